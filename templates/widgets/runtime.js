// Shared runtime of every widget script. It runs inside the widget's IIFE after the
// server has set S (document.currentScript), K (kind), P (product id or null),
// X (the id prefix of the rendered HTML), C (stylesheet URL), H (HTML) and M (data).
// Each kind's file defines init(root), called once its markup is in the page.
// Kept ES2017, no dependencies; the server strips comments and indentation once.

function state() {
  // One object per page, shared by every widget script and by a script included twice.
  var g = window.__storefrontWidgets;
  if (!g) {
    g = window.__storefrontWidgets = {n: 0, mounted: {}, css: {}};
  }
  return g;
}

function stylesheet(g) {
  var href = new URL(C, document.baseURI).href;
  if (!g.css[href]) {
    var linked = [].some.call(document.querySelectorAll('link[rel~="stylesheet"]'), function (l) {
      return l.href === href;
    });
    // A theme that links the stylesheet in <head> (to reserve the space) has it loaded already.
    g.css[href] = linked ? Promise.resolve() : new Promise(function (done) {
      var link = document.createElement('link');
      link.rel = 'stylesheet';
      link.href = href;
      link.onload = link.onerror = function () {
        done();
      };
      document.head.appendChild(link);
    });
  }
  return g.css[href];
}

function placeholder() {
  var spots = document.querySelectorAll('[data-storefront-widget]');
  for (var i = 0; i < spots.length; i++) {
    var spot = spots[i];
    if (spot.getAttribute('data-storefront-widget') === K && !spot.hasAttribute('data-sfw-mounted') &&
        (P === null || spot.getAttribute('data-product-id') === String(P))) {
      return spot;
    }
  }
  return null;
}

function reid(root, mine) {
  // The server renders ids with one fixed prefix; each mount gets its own so that several
  // widgets and forms on one page never share an id, a label target or a radio group.
  ['id', 'for', 'name', 'aria-controls', 'aria-describedby', 'aria-labelledby'].forEach(function (a) {
    root.querySelectorAll('[' + a + ']').forEach(function (el) {
      el.setAttribute(a, el.getAttribute(a).split(' ').map(function (token) {
        return token.indexOf(X) === 0 ? mine + token.slice(X.length) : token;
      }).join(' '));
    });
  });
}

function go() {
  var g = state();
  var key = K + ':' + P;
  var spot = placeholder();
  // Mounted already (a script included twice), unless a theme re-render has removed that widget.
  if ((g.mounted[key] && g.mounted[key].isConnected) || !(spot || (S && S.parentNode))) {
    return;
  }
  g.mounted[key] = spot || S;
  if (spot) {
    spot.setAttribute('data-sfw-mounted', '');
  }
  var mine = 'sfw' + (++g.n) + '-';
  // Mount only once the stylesheet is in, so the shopper never sees unstyled markup jump.
  stylesheet(g).then(function () {
    var box = document.createElement('div');
    box.innerHTML = H;
    var root = box.firstElementChild;
    reid(root, mine);
    if (spot) {
      spot.textContent = '';
      spot.appendChild(root);
    } else {
      S.parentNode.insertBefore(root, S.nextSibling);
    }
    g.mounted[key] = root;
    init(root);
  });
}

function start() {
  // The theme editor re-renders sections without running their scripts again.
  document.addEventListener('shopify:section:load', go);
  // A script without defer may run before its placeholder has been parsed.
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', go);
  } else {
    go();
  }
}
