/*
 * signature-pad.js: draw a signature with a finger, pen or mouse; it is kept as a PNG data URL
 * in a hidden field. Drawing is optional (the typed name signs), so without this file the
 * drawing area stays hidden and the form works as it is.
 *
 * Markup: <div data-signature hidden> holding a <canvas>, <input type="hidden"
 * name="drawn_signature">, a [data-signature-clear] button and a [data-signature-status]
 * live region. A page shown again after a problem sends the drawing back in the hidden field:
 * it is drawn on the canvas again, and signing sends it as it was.
 * Pointer events cover mouse, pen and touch; `touch-action: none` on the canvas
 * (portal.css) keeps the page from scrolling while drawing.
 * Plain ES2017, no dependencies; load it with `defer`.
 */
(function () {
  'use strict';

  function init(box) {
    const canvas = box.querySelector('canvas');
    const field = box.querySelector('input[name="drawn_signature"]');
    const clear = box.querySelector('[data-signature-clear]');
    const status = box.querySelector('[data-signature-status]');
    if (!canvas || !field || !canvas.getContext) return;
    box.hidden = false;
    const context = canvas.getContext('2d');
    let drawing = false;
    let last = null;

    function setUp() {
      context.lineWidth = 3;
      context.lineCap = 'round';
      context.lineJoin = 'round';
      context.strokeStyle = '#1d2a33';
    }

    function point(event) {
      const box = canvas.getBoundingClientRect();
      return {
        x: ((event.clientX - box.left) * canvas.width) / box.width,
        y: ((event.clientY - box.top) * canvas.height) / box.height,
      };
    }

    function store() {
      field.value = canvas.toDataURL('image/png');
      if (status) status.textContent = 'Drawing kept.';
    }

    canvas.addEventListener('pointerdown', (event) => {
      event.preventDefault();
      drawing = true;
      last = point(event);
      if (canvas.setPointerCapture) canvas.setPointerCapture(event.pointerId);
      context.beginPath();
      context.arc(last.x, last.y, context.lineWidth / 2, 0, Math.PI * 2);
      context.fill();
    });
    canvas.addEventListener('pointermove', (event) => {
      if (!drawing) return;
      event.preventDefault();
      const next = point(event);
      context.beginPath();
      context.moveTo(last.x, last.y);
      context.lineTo(next.x, next.y);
      context.stroke();
      last = next;
    });
    function finish() {
      if (!drawing) return;
      drawing = false;
      store();
    }
    canvas.addEventListener('pointerup', finish);
    canvas.addEventListener('pointercancel', finish);
    canvas.addEventListener('pointerleave', finish);

    if (clear) {
      clear.addEventListener('click', () => {
        context.clearRect(0, 0, canvas.width, canvas.height);
        field.value = '';
        if (status) status.textContent = 'Drawing cleared.';
      });
    }
    setUp();
    context.fillStyle = '#1d2a33';
    if (field.value.indexOf('data:image/png;base64,') === 0) {
      const kept = new Image();
      kept.addEventListener('load', () => {
        context.drawImage(kept, 0, 0, canvas.width, canvas.height);
        if (status) status.textContent = 'Your drawing is kept.';
      });
      kept.addEventListener('error', () => {
        field.value = '';
        if (status) status.textContent = 'Please draw your signature again.';
      });
      kept.src = field.value;
    }
  }

  function start() {
    document.querySelectorAll('[data-signature]').forEach(init);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
