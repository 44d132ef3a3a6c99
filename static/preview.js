// The preview page's own behaviour (a static file: the page allows no inline script).
// It plays the theme: keeps the price in step with the variant picker and, instead of
// posting to a cart that does not exist here, shows what the form would have sent.
(function () {
  'use strict';

  function ready() {
    var form = document.querySelector('[data-pv-form]');
    if (!form) {
      return;
    }
    var picker = form.querySelector('select[name="id"]');
    var price = document.querySelector('[data-pv-price]');
    var add = form.querySelector('[data-pv-add]');
    var result = document.querySelector('[data-pv-result]');

    if (picker) {
      picker.addEventListener('change', function () {
        var option = picker.options[picker.selectedIndex];
        price.textContent = option.getAttribute('data-price');
        var soldOut = option.hasAttribute('data-sold-out');
        add.disabled = soldOut;
        add.textContent = soldOut ? 'Sold out' : 'Add to cart';
      });
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var sent = [];
      new FormData(form).forEach(function (value, key) {
        sent.push(key + '=' + value);
      });
      result.textContent = 'Would add to cart: ' + sent.join(' & ');
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', ready);
  } else {
    ready();
  }
}());
