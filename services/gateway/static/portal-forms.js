/*
 * portal-forms.js: Up/Down on the Patient Portal Forms page move the row in place instead of
 * submitting the form (without this file they are submit buttons that re-show the list).
 *
 * Markup: <form data-reorder> with <tbody data-reorder-rows>; each <tr data-form-title> holds a
 * hidden "order" input, a .reorder-position number and buttons with data-move="up|down".
 * Focus stays on the pressed button; a polite live region says where the form went.
 * Plain ES2017, no dependencies; load it with `defer`.
 */
(function () {
  'use strict';

  function renumber(body) {
    const rows = Array.from(body.rows);
    rows.forEach((row, index) => {
      const position = row.querySelector('.reorder-position');
      if (position) position.textContent = String(index + 1);
      const up = row.querySelector('[data-move="up"]');
      const down = row.querySelector('[data-move="down"]');
      if (up) up.disabled = index === 0;
      if (down) down.disabled = index === rows.length - 1;
    });
  }

  function init(form) {
    const body = form.querySelector('[data-reorder-rows]');
    const status = form.querySelector('[data-reorder-status]');
    if (!body) return;
    form.addEventListener('click', (event) => {
      const target = event.target instanceof Element ? event.target : null;
      const button = target && target.closest('[data-move]');
      if (!button) return;
      event.preventDefault();
      const row = button.closest('tr');
      const up = button.getAttribute('data-move') === 'up';
      const sibling = up ? row.previousElementSibling : row.nextElementSibling;
      if (!sibling) return;
      body.insertBefore(row, up ? sibling : sibling.nextElementSibling);
      renumber(body);
      // A disabled button cannot keep focus: go to the row's other move button.
      const focusTarget = button.disabled
        ? row.querySelector(up ? '[data-move="down"]' : '[data-move="up"]')
        : button;
      if (focusTarget) focusTarget.focus();
      if (status) {
        const position = Array.from(body.rows).indexOf(row) + 1;
        status.textContent = `${row.getAttribute('data-form-title')} moved to position ${position}. Click Update to save.`;
      }
    });
  }

  function start() {
    document.querySelectorAll('form[data-reorder]').forEach(init);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
