// Personas — small behaviours: the slide-out (focus, Escape, close), dismissible messages,
// "…" menus.
(function () {
  "use strict";
  let lastFocus = null;

  function drawer() { return document.querySelector("[data-drawer]"); }

  function closeDrawer() {
    const root = document.getElementById("drawer-root");
    if (!root || !drawer()) return;
    root.innerHTML = "";
    if (lastFocus && document.body.contains(lastFocus)) lastFocus.focus();
    lastFocus = null;
  }

  function openedDrawer() {
    const d = drawer();
    if (!d) return;
    const first = d.querySelector("input:not([type=hidden]), select, textarea, button:not(.drawer-close)");
    (first || d).focus();
  }

  document.addEventListener("click", function (event) {
    const closer = event.target.closest("[data-drawer-close]");
    if (closer && document.getElementById("drawer-root").contains(closer)) {
      event.preventDefault();
      closeDrawer();
      return;
    }
    const opener = event.target.closest("[data-drawer-open]");
    if (opener) {
      // From a "…" menu the focus comes back to the menu's button: the item will be hidden.
      const menu = opener.closest("details.menu");
      lastFocus = menu ? menu.querySelector("summary") : opener;
    }
    const dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.closest(".message").remove();
    const remover = event.target.closest("[data-remove-row]");
    if (remover) { event.preventDefault(); remover.closest(".attr-row").remove(); }
    const adder = event.target.closest("[data-add-row]");
    if (adder) {
      event.preventDefault();
      const tpl = document.getElementById(adder.dataset.addRow);
      const list = document.getElementById(adder.dataset.target);
      if (tpl && list) {
        const n = list.querySelectorAll(".attr-row").length;
        const html = tpl.innerHTML.replaceAll("__n__", String(Date.now()) + n);
        list.insertAdjacentHTML("beforeend", html);
        const inputs = list.querySelectorAll(".attr-row:last-child input");
        if (inputs.length) inputs[0].focus();
      }
    }
  });

  document.addEventListener("keydown", function (event) {
    const d = drawer();
    if (!d) return;
    if (event.key === "Escape") { event.preventDefault(); closeDrawer(); return; }
    if (event.key === "Tab") {
      const focusable = d.querySelectorAll("a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, textarea");
      if (!focusable.length) return;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
      else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "drawer-root") openedDrawer();
  });
  document.addEventListener("closeDrawer", closeDrawer);

  // Messages fade after a while; errors stay until dismissed.
  function ageMessages() {
    document.querySelectorAll(".message:not(.message-error):not([data-aged])").forEach(function (m) {
      m.dataset.aged = "1";
      setTimeout(function () { m.remove(); }, 6000);
    });
  }
  document.addEventListener("DOMContentLoaded", ageMessages);
  document.addEventListener("htmx:afterSettle", ageMessages);

  // "…" menus (<details class="menu">) close like menus: on a click outside them, after an
  // item is chosen, and on Escape, which gives the focus back to the menu's button.
  function closeMenus(except) {
    document.querySelectorAll("details.menu[open]").forEach(function (m) {
      if (m !== except) m.removeAttribute("open");
    });
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest(".menu-items a, .menu-items button")) {
      setTimeout(function () { closeMenus(null); }, 0);  // after the item's own action
      return;
    }
    closeMenus(event.target.closest("details.menu"));
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    const open = document.querySelector("details.menu[open]");
    if (!open) return;
    open.removeAttribute("open");
    open.querySelector("summary").focus();
  });

  // "Copy link" buttons: data-copy="#input-id".
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.querySelector(button.dataset.copy);
    if (!input) return;
    input.select();
    if (navigator.clipboard) navigator.clipboard.writeText(input.value);
    button.textContent = "Copied";
  });
})();
