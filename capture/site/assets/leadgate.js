/*
 * Leadgate page script, loaded on every page of the site.
 *
 * 1. Remembers where the visit came from (utm_* parameters, the first page and its referrer)
 *    in sessionStorage, so the form can send them even when the visitor arrived elsewhere.
 * 2. Asks the capture service for a form token when a form is shown (its time trap: a post
 *    sent faster than a person fills the form in is held as spam). Without one the form is
 *    still sent.
 * 3. Sends the download form with fetch and shows the answer in place. It shows success only
 *    when the capture service answers {"ok": true}; anything else keeps the form and says why.
 * 4. Filters the catalog by tag in place (the tag links still work without JavaScript).
 *
 * Plain ES2017, no build step. Without JavaScript the form posts normally and the service
 * answers with its own pages.
 */
(function () {
  "use strict";

  var UTM_FIELDS = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];
  var KEYS = { utm: "leadgate.utm", landing: "leadgate.landing_page", referrer: "leadgate.referrer" };
  var MESSAGES = {
    unreachable: "We could not reach the download service, so nothing was sent. " +
      "Check your connection and try again.",
    generic: "Something went wrong on our side and your request was not completed. " +
      "Please try again in a moment.",
    invalid: "Please check the highlighted fields.",
    sending: "Sending…"
  };

  /* -- visit data ------------------------------------------------------------------ */

  function storage() {
    try {
      var store = window.sessionStorage;
      store.getItem(KEYS.landing);
      return store;
    } catch (e) {
      return null; // disabled storage or privacy mode: the form still works without it
    }
  }

  function utmFromUrl() {
    var params = new URLSearchParams(window.location.search);
    if (!UTM_FIELDS.some(function (name) { return params.has(name); })) {
      return null;
    }
    var utm = {};
    UTM_FIELDS.forEach(function (name) { utm[name] = params.get(name) || ""; });
    return utm;
  }

  function rememberVisit(store) {
    if (!store) {
      return;
    }
    try {
      var utm = utmFromUrl();
      if (utm) {
        store.setItem(KEYS.utm, JSON.stringify(utm));
      }
      if (store.getItem(KEYS.landing) === null) {
        store.setItem(KEYS.landing, window.location.href);
        store.setItem(KEYS.referrer, document.referrer);
      }
    } catch (e) {
      /* storage full or refused: nothing to remember, nothing to break */
    }
  }

  function visitData(store) {
    var data = { landing_page: "", referrer: "" };
    var utm = utmFromUrl();
    if (store) {
      try {
        utm = utm || JSON.parse(store.getItem(KEYS.utm) || "null");
        data.landing_page = store.getItem(KEYS.landing) || "";
        data.referrer = store.getItem(KEYS.referrer) || "";
      } catch (e) {
        /* unreadable entry: fall back to this page */
      }
    }
    if (!data.landing_page) {
      data.landing_page = window.location.href;
      data.referrer = document.referrer;
    }
    UTM_FIELDS.forEach(function (name) {
      data[name] = (utm && typeof utm[name] === "string") ? utm[name] : "";
    });
    return data;
  }

  /* Fill only empty fields: a form the service re-rendered already holds the original values. */
  function fillHidden(form, data) {
    Object.keys(data).forEach(function (name) {
      var input = form.elements.namedItem(name);
      if (input && input.type === "hidden" && !input.value && data[name]) {
        input.value = input.maxLength > 0 ? data[name].slice(0, input.maxLength) : data[name];
      }
    });
  }

  /* -- form token ------------------------------------------------------------------ */

  /* The token's address beside the form's: https://leads.example.com/submit -> …/form-token. */
  function tokenUrl(form) {
    try {
      var url = new URL(form.action, window.location.href);
      if (!/\/submit$/.test(url.pathname)) {
        return null;
      }
      url.pathname = url.pathname.replace(/\/submit$/, "/form-token");
      url.search = "";
      url.hash = "";
      return url.href;
    } catch (e) {
      return null;
    }
  }

  /* Fill form_token once, unless the service rendered one already; any failure leaves it
     empty and the form is sent without it. */
  async function fetchToken(form) {
    var input = form.elements.namedItem("form_token");
    var url = tokenUrl(form);
    if (!input || input.value || !url) {
      return;
    }
    try {
      var response = await fetch(url, {
        credentials: "omit", cache: "no-store", headers: { Accept: "application/json" }
      });
      var data = response.ok ? await response.json() : null;
      if (data && typeof data.token === "string" && !input.value) {
        input.value = data.token;
      }
    } catch (e) {
      /* unreachable service, blocked request: the post goes without a token */
    }
  }

  /* -- messages -------------------------------------------------------------------- */

  function messageRegion(form) {
    return form.querySelector("[data-leadgate-messages]");
  }

  function setParagraphs(element, lines) {
    element.textContent = "";
    lines.forEach(function (line) {
      var p = document.createElement("p");
      p.textContent = line;
      element.appendChild(p);
    });
    element.hidden = lines.length === 0;
  }

  function clearErrors(form) {
    setParagraphs(messageRegion(form), []);
    Array.prototype.forEach.call(form.querySelectorAll(".leadgate-form__error"), function (el) {
      el.textContent = "";
      el.hidden = true;
    });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) {
      el.removeAttribute("aria-invalid");
    });
  }

  function showFormError(form, message) {
    var region = messageRegion(form);
    setParagraphs(region, [message]);
    region.focus();
  }

  function asList(value) {
    if (Array.isArray(value)) {
      return value.filter(function (m) { return typeof m === "string"; });
    }
    return typeof value === "string" ? [value] : [];
  }

  function showFieldErrors(form, errors) {
    var summary = [MESSAGES.invalid];
    var first = null;
    Array.prototype.forEach.call(form.elements, function (input) {
      var messages = asList(errors[input.name]);
      var slot = document.getElementById("error-" + input.name);
      if (!messages.length || !slot || input.type === "hidden") {
        return;
      }
      slot.textContent = messages.join(" ");
      slot.hidden = false;
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    });
    // Fields the visitor cannot see (resource_id, consent hashes, utm_*) go to the summary.
    Object.keys(errors).forEach(function (name) {
      var input = form.elements.namedItem(name);
      if (!input || input.type === "hidden" || !document.getElementById("error-" + name)) {
        summary = summary.concat(asList(errors[name]));
      }
    });
    setParagraphs(messageRegion(form), summary);
    (first || messageRegion(form)).focus();
  }

  function safeUrl(value, base) {
    try {
      var url = new URL(value, base);
      return (url.protocol === "https:" || url.protocol === "http:") ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function showSuccess(form, data) {
    var box = document.createElement("div");
    box.className = "leadgate-success";
    box.setAttribute("role", "status");
    box.tabIndex = -1;
    var title = (data.resource && typeof data.resource.title === "string") ? data.resource.title : "";

    var heading = document.createElement("p");
    heading.className = "leadgate-success__title";
    // With email delivery the service sends the link to the mailbox and names it, masked.
    var emailed = typeof data.emailed_to === "string" && data.emailed_to ? data.emailed_to : "";
    heading.textContent = emailed ? "Thank you! Check your inbox." : "Thank you! Your copy is ready.";
    box.appendChild(heading);

    var link = emailed ? null : safeUrl(data.download_url, form.action) || safeUrl(data.thanks_url, form.action);
    if (emailed) {
      var sent = document.createElement("p");
      sent.textContent = "We are sending the link to " + (title ? "“" + title + "”" : "your copy") +
        " to " + emailed + ". It should arrive within a few minutes; if it does not, look in your spam folder.";
      box.appendChild(sent);
    }
    if (link) {
      var p = document.createElement("p");
      var a = document.createElement("a");
      a.className = "md-button md-button--primary";
      a.href = link;
      a.textContent = title ? "Download “" + title + "” (PDF)" : "Download (PDF)";
      p.appendChild(a);
      box.appendChild(p);
    }
    var note = document.createElement("p");
    note.className = "leadgate-success__note";
    // The service says how long its links last (DOWNLOAD_MAX_AGE in words); a service older
    // than this script does not, and then the note stays vague rather than wrong.
    var lifetime = typeof data.link_valid_for === "string" && data.link_valid_for ?
      "works for " + data.link_valid_for : "expires after a while";
    note.textContent = "The link is made for you and " + lifetime + ". " +
      "If it stops working, fill in the form again for a fresh one.";
    box.appendChild(note);

    form.replaceWith(box);
    box.focus();
  }

  /* -- sending --------------------------------------------------------------------- */

  function setBusy(form, busy) {
    var button = form.querySelector("[type=submit]");
    form.setAttribute("aria-busy", busy ? "true" : "false");
    if (!button) {
      return;
    }
    if (busy) {
      button.dataset.label = button.textContent;
      button.textContent = MESSAGES.sending;
    } else if (button.dataset.label) {
      button.textContent = button.dataset.label;
    }
    button.disabled = busy;
  }

  async function send(form, store) {
    clearErrors(form);
    fillHidden(form, visitData(store));
    setBusy(form, true);
    var response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" }
      });
    } catch (e) {
      setBusy(form, false);
      showFormError(form, MESSAGES.unreachable);
      return;
    }
    var data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null; // a proxy's HTML error page, an empty body: treated as a failure below
    }
    if (response.ok && data && data.ok === true) {
      showSuccess(form, data);
      return;
    }
    setBusy(form, false);
    if (response.status === 422 && data && data.errors && typeof data.errors === "object") {
      showFieldErrors(form, data.errors);
      return;
    }
    var message = data && typeof data.error === "string" && data.error;
    showFormError(form, message || MESSAGES.generic);
  }

  function enhanceForms(store) {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-leadgate-form]"), function (form) {
      var sending = false;
      fetchToken(form);
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (sending) {
          return;
        }
        sending = true;
        var done = function () { sending = false; };
        send(form, store).then(done, done);
      });
    });
  }

  /* -- catalog filter -------------------------------------------------------------- */

  function enhanceCatalog() {
    var catalog = document.querySelector("[data-leadgate-catalog]");
    if (!catalog) {
      return;
    }
    var status = catalog.querySelector("[data-leadgate-filter-status]");
    var active = null;

    function apply(slug, label) {
      active = slug;
      var shown = 0;
      Array.prototype.forEach.call(catalog.querySelectorAll("[data-leadgate-item]"), function (item) {
        var match = !slug || item.dataset.tags.split(" ").indexOf(slug) !== -1;
        item.hidden = !match;
        shown += match ? 1 : 0;
      });
      Array.prototype.forEach.call(catalog.querySelectorAll("[data-leadgate-group]"), function (group) {
        group.hidden = !group.querySelector("[data-leadgate-item]:not([hidden])");
      });
      Array.prototype.forEach.call(catalog.querySelectorAll("a[data-leadgate-tag]"), function (link) {
        if (link.dataset.leadgateTag === slug) {
          link.setAttribute("aria-current", "true");
        } else {
          link.removeAttribute("aria-current");
        }
      });
      if (!status) {
        return;
      }
      status.textContent = "";
      if (slug) {
        status.appendChild(document.createTextNode(
          shown + (shown === 1 ? " resource" : " resources") + " tagged “" + label + "”. "));
        var reset = document.createElement("button");
        reset.type = "button";
        reset.className = "leadgate-filter__reset";
        reset.textContent = "Show all";
        reset.addEventListener("click", function () { apply(null, ""); });
        status.appendChild(reset);
      }
    }

    catalog.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-leadgate-tag]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) {
        return; // let people open the tag's own page in a new tab
      }
      event.preventDefault();
      var slug = link.dataset.leadgateTag;
      var label = link.firstChild ? link.firstChild.textContent.trim() : slug;
      apply(active === slug ? null : slug, label);
    });
  }

  var store = storage();
  rememberVisit(store);
  enhanceForms(store);
  enhanceCatalog();
})();
