// Subscription behaviour: keeps selling_plan in every cart form of this product in step
// with the shopper's choice, and re-prices from the variant those forms currently hold.

function init(root) {
  var variants = {};
  M.variants.forEach(function (v) {
    variants[v.id] = v;
  });
  var hook = function (name) {
    return root.querySelector('[data-sfw="' + name + '"]');
  };
  var subscribe = hook('subscribe');
  var plan = hook('plan');
  var frequency = hook('frequency');
  var current = M.initial_variant_id;

  function variantOf(form) {
    // namedItem covers controls tied to the form by a form="" attribute and radio lists.
    var id = form.elements.namedItem('id');
    return id && variants[id.value] ? id.value : null;
  }

  function ours(form) {
    return form.contains(root) || form.getAttribute('data-product-id') === String(P) || variantOf(form) !== null;
  }

  function forms() {
    return [].filter.call(document.querySelectorAll('form[action*="/cart/add"]'), ours);
  }

  function offer(v, planId) {
    return v.selling_plans.filter(function (o) {
      return String(o.selling_plan_id) === String(planId);
    })[0] || null;
  }

  function text(name, value) {
    var el = hook(name);
    if (el) {
      el.textContent = value;
    }
  }

  function write() {
    var v = variants[current];
    var value = v && v.selling_plans.length && subscribe.checked && offer(v, plan.value) ? plan.value : '';
    forms().forEach(function (form) {
      var input = form.querySelector('input[name="selling_plan"]');
      if (!input) {
        input = document.createElement('input');
        input.type = 'hidden';
        input.name = 'selling_plan';
        form.appendChild(input);
      }
      input.value = value;
    });
  }

  function show() {
    var v = variants[current] || variants[M.initial_variant_id];
    current = v.id;
    root.hidden = !v.selling_plans.length;
    [].forEach.call(plan.options, function (option) {
      var o = offer(v, option.value);
      option.hidden = option.disabled = !o;
      if (o) {
        option.textContent = o.option_label;
      }
    });
    // Plans in one group differ: the headline always shows the chosen plan's own discount.
    var chosen = offer(v, plan.value) || v.selling_plans[0];
    if (chosen) {
      plan.value = String(chosen.selling_plan_id);
      text('subscribe-label', chosen.subscribe_label);
      text('subscribe-price', chosen.price_formatted);
      text('then', chosen.later_label || '');
    }
    text('onetime-price', v.price_formatted);
    root.querySelectorAll('input,select').forEach(function (el) {
      el.disabled = !v.available;
    });
    frequency.hidden = !(subscribe.checked && v.selling_plans.length > 1);
    write();
  }

  function follow(form) {
    current = variantOf(form) || current;
    show();
  }

  root.addEventListener('change', show);
  document.addEventListener('change', function (e) {
    var form = e.target.form || (e.target.closest && e.target.closest('form'));
    // A widget the theme has removed stays silent; its replacement does the writing.
    if (!root.isConnected || !form || root.contains(e.target) || !ours(form)) {
      return;
    }
    // Themes update input[name=id] in their own change handlers: read it once those have run.
    setTimeout(function () {
      follow(form);
    }, 0);
  });
  // A theme may re-render its form; write the plan again right before any submit.
  document.addEventListener('submit', function (e) {
    if (root.isConnected && e.target.matches && e.target.matches('form[action*="/cart/add"]') && ours(e.target)) {
      write();
    }
  }, true);
  var first = forms()[0];
  if (first) {
    follow(first);
  } else {
    show();
  }
}
