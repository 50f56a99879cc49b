// dajia console: keyboard shortcuts (the pages work without this file; it only adds keys).
(function () {
  "use strict";
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }
  function rowLinks() { return Array.prototype.slice.call(document.querySelectorAll("table.queue a.row-link")); }
  function move(step) {
    var links = rowLinks();
    if (!links.length) return;
    var i = links.indexOf(document.activeElement);
    var next = i < 0 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, i + step));
    links[next].focus();
    links[next].closest("tr").scrollIntoView({ block: "nearest" });
  }
  function submit(form) {
    if (!form) return;
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  }
  function goTo(action) {
    var reason = document.getElementById("r-" + action);
    if (!reason) return;
    var first = reason.closest("form").querySelector("select, input:not([type=hidden]), textarea");
    (first || reason).focus();
  }
  // a table that scrolls sideways (narrow screens) can take focus, so the keyboard can scroll it too
  function scrollables() {
    var els = document.querySelectorAll("main table, main .table-wrap");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible") {
        el.setAttribute("tabindex", "0");
      } else if (el.getAttribute("tabindex") === "0") {
        el.removeAttribute("tabindex");
      }
    }
  }
  scrollables();
  window.addEventListener("resize", scrollables);
  document.addEventListener("keydown", function (ev) {
    var help = document.getElementById("help");
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && typing(ev.target) && ev.target.form) {
      ev.preventDefault();
      submit(ev.target.form);
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    if (help && help.open) return;
    switch (ev.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "n": submit(document.getElementById("next-form") || (document.getElementById("next-case") || {}).form); break;
      case "c": goTo("close"); break;
      case "b": goTo("ban"); break;
      case "d": goTo("dismiss"); break;
      case "a": goTo("reject_appeal"); break;
      case "r": goTo("reverse"); break;
      case "/": var q = document.getElementById("q"); if (q) q.focus(); else return; break;
      case "?": if (help && help.showModal) help.showModal(); break;
      default: return;
    }
    ev.preventDefault();
  });
})();
