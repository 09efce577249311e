// The disease picker of the new-document form: Flask-Admin's Select2 (3.5) searching the diseases on the server
// (data-search-url: 告示番号 / 小慢コード, name, カナ; 難病 only those in force). Without JavaScript, or without Select2,
// the page's full <select> (<optgroup>s) is the picker.
//
// The <select name=disease> stays the field the form posts. Select2 3.5 searches by ajax only from an <input>, so it
// runs on a nameless hidden input beside the select, and the two follow each other: a pick in the search sets the
// select, a change of the select (a script, autofill) shows in the search box. The select is kept out of sight and
// out of the tab order; its <label> names the search box instead.
(function ($) {
  "use strict";
  if (!$ || !$.fn || !$.fn.select2) { return; }

  var TEXT = {
    searching: "検索中…",
    noMatches: "該当する疾病がありません",
    loadMore: "さらに読み込み中…",
    ajaxError: "検索できませんでした。画面を再読み込みしてください（ログインの有効期限が切れた可能性があります）。"
  };
  var SUBTYPE = /^\u3000/;  // views.documents.disease_choices writes a 病型 as 「　名前（病型）」 under its disease

  // What the search box shows for the select's chosen option: the label the search itself gives it.
  function chosen(select) {
    var option = select.options[select.selectedIndex];
    if (!option || !option.value) { return null; }
    var text = option.text.trim();
    if (SUBTYPE.test(option.text)) {
      for (var i = select.selectedIndex - 1; i >= 0; i--) {
        var disease = select.options[i];
        if (disease.value && !SUBTYPE.test(disease.text)) {
          text = disease.text.trim() + " › " + text.replace(/（病型）$/, "");
          break;
        }
      }
    }
    return {id: option.value, text: text};
  }

  function choose(select, item) {
    var value = item ? String(item.id) : "";
    var exists = !value || Array.prototype.some.call(select.options, function (o) { return o.value === value; });
    if (!exists) {  // not in the page's list (the server checks the id again in any case)
      select.appendChild(new Option(item.text, value));
    }
    select.value = value;
  }

  function picker(select) {
    var $select = $(select);
    var searchId = select.id + "-search";
    var input = $("<input type='hidden'>").attr({id: searchId, "class": select.className})
      .val(select.value);
    $select.before(input);
    $("label[for='" + select.id + "']").attr("for", searchId);
    $select.addClass("select2-offscreen disease-picker-source").attr({tabindex: "-1", "aria-hidden": "true"});

    input.select2({
      width: "100%",
      placeholder: select.getAttribute("data-placeholder") || "",
      minimumInputLength: 0,
      dropdownCssClass: "disease-picker-drop",
      ajax: {
        url: select.getAttribute("data-search-url"),
        dataType: "json",
        quietMillis: 250,
        data: function (term, page) { return {q: term, page: page}; },
        results: function (data) {
          return {results: data.results || [], more: !!(data.pagination && data.pagination.more)};
        }
      },
      initSelection: function (element, callback) { callback(chosen(select)); },
      formatResult: function (item, container, query, escapeMarkup) {
        var html = "<div class='disease-picker-text'>" + escapeMarkup(item.text) + "</div>";
        if (item.group) { html += "<div class='disease-picker-group'>" + escapeMarkup(item.group) + "</div>"; }
        return html;
      },
      formatSearching: function () { return TEXT.searching; },
      formatNoMatches: function () { return TEXT.noMatches; },
      formatLoadMore: function () { return TEXT.loadMore; },
      formatAjaxError: function () { return TEXT.ajaxError; },
      formatMatches: function (n) {
        return n + "件の候補があります。上下の矢印キーで選び、Enterで決定します。";
      }
    });

    // The field's <label> puts the keyboard in the search box (Select2 labels its own focus input for screen readers).
    $("label[for='" + searchId + "']").on("click", function (event) {
      event.preventDefault();
      input.select2("focus");
    });
    input.on("change", function () { choose(select, input.select2("data")); });
    $select.on("change", function () {
      var item = chosen(select);
      if (String(input.select2("val") || "") !== select.value) { input.select2("data", item); }
    });
  }

  $(function () {
    $("select[data-search-url]").each(function () { picker(this); });
  });
})(window.jQuery);
