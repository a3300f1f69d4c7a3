/*
 * print.js: makes any <button data-action="print"> print the page. The CSP forbids
 * inline onclick handlers, so the handler lives here. A print button written with the
 * `hidden` attribute is revealed here, so a browser without JavaScript shows no dead button.
 * Plain ES2017, no dependencies; load it with `defer`.
 */
(function () {
  'use strict';

  function init() {
    document.querySelectorAll('[data-action="print"][hidden]').forEach((button) => {
      button.hidden = false;
    });
    document.addEventListener('click', (event) => {
      const target = event.target instanceof Element ? event.target : null;
      const button = target && target.closest('[data-action="print"]');
      if (!button) return;
      event.preventDefault();
      window.print();
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
