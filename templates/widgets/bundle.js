// Bundle builder behaviour: quantities per item within each collection's min/max and the
// box size, then one POST to /cart/add.js with every item tied to the bundle by properties.

function init(root) {
  var counts = {};
  var busy = false;
  var status = root.querySelector('[data-sfw="status"]');
  var add = root.querySelector('[data-sfw="add"]');

  function sum(collection) {
    var n = 0;
    Object.keys(counts).forEach(function (key) {
      if (collection === undefined || key.split(':')[0] === String(collection)) {
        n += counts[key];
      }
    });
    return n;
  }

  function show() {
    var all = sum();
    var need = M.items_count - all;
    var short = M.collections.filter(function (c, i) {
      return sum(i) < c.min;
    })[0];
    root.querySelectorAll('[data-sfw-item]').forEach(function (button) {
      var key = button.getAttribute('data-sfw-item');
      var collection = +key.split(':')[0];
      var off = button.getAttribute('data-sfw-step') === '1'
        ? all >= M.items_count || sum(collection) >= M.collections[collection].max
        : !counts[key];
      // aria-disabled, not disabled: a focused button keeps focus when it reaches a limit.
      button.setAttribute('aria-disabled', String(off));
    });
    root.querySelectorAll('[data-sfw-count]').forEach(function (el) {
      el.textContent = counts[el.getAttribute('data-sfw-count')] || 0;
    });
    status.textContent = need > 0 ? M.labels.add_more.split('{remainder}').join(need)
      : short ? short.short : M.labels.full;
    add.setAttribute('aria-disabled', String(busy || need > 0 || !!short));
  }

  function bundleId() {
    var bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return [].map.call(bytes, function (b) {
      return (b + 256).toString(16).slice(1);
    }).join('');
  }

  function send() {
    var id = bundleId();
    var quantities = {};
    var order = [];
    Object.keys(counts).forEach(function (key) {
      var at = key.split(':');
      var variant = M.collections[at[0]].variant_ids[at[1]];
      if (counts[key]) {
        if (!quantities[variant]) {
          order.push(variant);
        }
        quantities[variant] = (quantities[variant] || 0) + counts[key];
      }
    });
    var items = order.map(function (variant) {
      return {id: variant, quantity: quantities[variant], properties: {_bundle_id: id, _bundle: M.title}};
    });
    var base = (window.Shopify && window.Shopify.routes && window.Shopify.routes.root) || '/';
    busy = true;
    show();
    fetch(base + 'cart/add.js', {
      method: 'POST',
      headers: {'Content-Type': 'application/json', Accept: 'application/json'},
      body: JSON.stringify({items: items})
    }).then(function (response) {
      if (!response.ok) {
        throw new Error('cart/add.js answered ' + response.status);
      }
      return true;
    }).catch(function () {
      return false;
    }).then(function (added) {
      busy = false;
      show();
      status.textContent = added ? M.labels.added : M.labels.add_failed;
      if (added) {
        root.dispatchEvent(new CustomEvent('storefront:bundle-added', {bubbles: true, detail: {items: items}}));
      }
    });
  }

  root.addEventListener('click', function (e) {
    var button = e.target.closest('button');
    if (!button || button.getAttribute('aria-disabled') === 'true') {
      return;
    }
    var key = button.getAttribute('data-sfw-item');
    if (key) {
      counts[key] = (counts[key] || 0) + Number(button.getAttribute('data-sfw-step'));
      show();
    } else if (button === add) {
      send();
    }
  });
  show();
}
