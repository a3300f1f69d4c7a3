/*
 * menu.js: progressive enhancement for dropdown menu buttons.
 *
 * Markup (the list already shows on :hover / :focus-within without this file):
 *
 *   <div class="menu">
 *     <button type="button" class="menu-button" aria-haspopup="true"
 *             aria-expanded="false" aria-controls="ID">Patient Info</button>
 *     <ul class="menu-list" id="ID" role="menu">
 *       <li role="none"><a role="menuitem" href="…">…</a></li>
 *       <li role="separator" class="menu-separator"></li>   (optional divider)
 *     </ul>
 *   </div>
 *
 * With this file: the pointer hovering opens the menu and leaving closes it. A click or
 * Enter/Space toggles the menu and keeps it open. ArrowDown/ArrowUp/Home/End move
 * between items. Escape closes the menu and returns focus to the button. Tab, a click
 * outside or focus leaving the menu closes it. aria-expanded always shows the state.
 * Plain ES2017, no dependencies; load it with `defer`.
 */
(function () {
  'use strict';

  const HOVER_CLOSE_DELAY_MS = 250;
  const menus = [];

  function menuItems(menu) {
    return Array.from(menu.list.querySelectorAll('[role="menuitem"]')).filter(
      (item) => !item.hasAttribute('disabled') && item.getAttribute('aria-disabled') !== 'true'
    );
  }

  function isOpen(menu) {
    return menu.button.getAttribute('aria-expanded') === 'true';
  }

  function open(menu, openedBy) {
    window.clearTimeout(menu.closeTimer);
    menus.forEach((other) => {
      if (other !== menu) close(other, false);
    });
    menu.openedBy = openedBy;
    menu.button.setAttribute('aria-expanded', 'true');
    menu.root.classList.add('is-open');
    // Near the right edge of the window, align the list to the button's right edge.
    menu.root.classList.remove('menu-flip');
    if (menu.list.getBoundingClientRect().right > document.documentElement.clientWidth) {
      menu.root.classList.add('menu-flip');
    }
  }

  function close(menu, returnFocus) {
    window.clearTimeout(menu.closeTimer);
    if (!isOpen(menu)) return;
    menu.openedBy = null;
    menu.button.setAttribute('aria-expanded', 'false');
    menu.root.classList.remove('is-open', 'menu-flip');
    if (returnFocus) menu.button.focus();
  }

  function focusItem(menu, index) {
    const items = menuItems(menu);
    if (items.length === 0) return;
    const wrapped = (index + items.length) % items.length;
    items[wrapped].focus();
  }

  function onButtonClick(menu, event) {
    // event.detail is 0 when Enter or Space "clicked" the button.
    const fromKeyboard = event.detail === 0;
    if (isOpen(menu) && menu.openedBy === 'hover' && !fromKeyboard) {
      menu.openedBy = 'click';   // the pointer opened it already; a click pins it open
      return;
    }
    if (isOpen(menu)) {
      close(menu, false);
      return;
    }
    open(menu, 'click');
    if (fromKeyboard) focusItem(menu, 0);
  }

  function onButtonKeydown(menu, event) {
    if (event.key === 'ArrowDown' || event.key === 'Down') {
      event.preventDefault();
      open(menu, 'keyboard');
      focusItem(menu, 0);
    } else if (event.key === 'ArrowUp' || event.key === 'Up') {
      event.preventDefault();
      open(menu, 'keyboard');
      focusItem(menu, -1);
    } else if (event.key === 'Escape' || event.key === 'Esc') {
      close(menu, false);
    }
  }

  function onListKeydown(menu, event) {
    const items = menuItems(menu);
    const current = items.indexOf(document.activeElement);
    switch (event.key) {
      case 'ArrowDown':
      case 'Down':
        event.preventDefault();
        focusItem(menu, current + 1);
        break;
      case 'ArrowUp':
      case 'Up':
        event.preventDefault();
        focusItem(menu, current - 1);
        break;
      case 'Home':
        event.preventDefault();
        focusItem(menu, 0);
        break;
      case 'End':
        event.preventDefault();
        focusItem(menu, -1);
        break;
      case 'Escape':
      case 'Esc':
        event.preventDefault();
        close(menu, true);
        break;
      case 'Tab':
        close(menu, false);   // let focus move on naturally
        break;
      case ' ':
      case 'Spacebar':
        // Space activates a link-style menu item, as Enter does.
        if (document.activeElement && document.activeElement.tagName === 'A') {
          event.preventDefault();
          document.activeElement.click();
        }
        break;
      default:
        break;
    }
  }

  function setup(root) {
    const button = root.querySelector('.menu-button');
    if (!button) return;
    const listId = button.getAttribute('aria-controls');
    const list = (listId && document.getElementById(listId)) || root.querySelector('.menu-list');
    if (!list) return;
    if (!button.hasAttribute('type')) button.setAttribute('type', 'button');
    button.setAttribute('aria-expanded', 'false');

    const menu = { root, button, list, openedBy: null, closeTimer: 0 };
    menus.push(menu);
    root.classList.add('menu-js');

    button.addEventListener('click', (event) => onButtonClick(menu, event));
    button.addEventListener('keydown', (event) => onButtonKeydown(menu, event));
    list.addEventListener('keydown', (event) => onListKeydown(menu, event));

    // Hover opens for a mouse only; touch and pen use the click path.
    root.addEventListener('pointerenter', (event) => {
      if (event.pointerType !== 'mouse') return;
      window.clearTimeout(menu.closeTimer);
      if (!isOpen(menu)) open(menu, 'hover');
    });
    root.addEventListener('pointerleave', (event) => {
      if (event.pointerType !== 'mouse' || menu.openedBy !== 'hover') return;
      menu.closeTimer = window.setTimeout(() => close(menu, false), HOVER_CLOSE_DELAY_MS);
    });

    // Focus leaving the whole menu (for example with Shift+Tab) closes it.
    root.addEventListener('focusout', (event) => {
      if (event.relatedTarget && !root.contains(event.relatedTarget)) close(menu, false);
    });
  }

  function closeOnOutsideClick(event) {
    menus.forEach((menu) => {
      if (isOpen(menu) && !menu.root.contains(event.target)) close(menu, false);
    });
  }

  function init() {
    document.querySelectorAll('.menu').forEach(setup);
    document.addEventListener('pointerdown', closeOnOutsideClick);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
