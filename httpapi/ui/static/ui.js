// pushgateway-cluster UI: group filter, expand/collapse, delete buttons
// (one group, the selected groups, all groups).
// No dependencies; loaded with "defer" from the binary itself.
(function () {
  "use strict";

  // ---- filter groups by grouping label (client side only) ----
  var input = document.getElementById("group-filter");
  var count = document.getElementById("group-count");
  var groups = Array.prototype.slice.call(document.querySelectorAll(".group[data-labels]"));
  groups.forEach(function (g) {
    try {
      g._labels = JSON.parse(g.getAttribute("data-labels"));
    } catch (e) {
      g._labels = {};
    }
  });

  function unquote(s) {
    if (s.length >= 2 && (s[0] === '"' || s[0] === "'") && s[s.length - 1] === s[0]) {
      return s.slice(1, -1);
    }
    return s;
  }

  // A term "name=value" matches a label with that name whose value contains
  // value; "name=" matches groups having the label; a bare term matches any
  // label name or value containing it. Every term must match. Case-insensitive.
  function termMatches(labels, term) {
    var eq = term.indexOf("=");
    var names = Object.keys(labels);
    if (eq > 0) {
      var name = term.slice(0, eq);
      var value = unquote(term.slice(eq + 1));
      return names.some(function (n) {
        return n.toLowerCase() === name && String(labels[n]).toLowerCase().indexOf(value) >= 0;
      });
    }
    term = unquote(term);
    return names.some(function (n) {
      return n.toLowerCase().indexOf(term) >= 0 || String(labels[n]).toLowerCase().indexOf(term) >= 0;
    });
  }

  function applyFilter() {
    var q = input.value.trim().toLowerCase();
    var terms = q ? q.split(/\s+/) : [];
    var shown = 0;
    groups.forEach(function (g) {
      var ok = terms.every(function (t) { return termMatches(g._labels, t); });
      g.classList.toggle("hidden", !ok);
      if (ok) shown++;
    });
    if (count) {
      // With a server-side selector, the page holds the matching groups of
      // data-total.
      var total = count.getAttribute("data-total");
      var all = total ? groups.length + " of " + total + (total === "1" ? " group" : " groups") + " match"
        : groups.length + (groups.length === 1 ? " group" : " groups");
      count.textContent = terms.length ? shown + " of " + groups.length + " shown groups" : all;
    }
    if (window.history && window.history.replaceState) {
      var url = new URL(window.location.href);
      if (q) url.searchParams.set("q", input.value.trim()); else url.searchParams.delete("q");
      window.history.replaceState(null, "", url.toString());
    }
  }

  if (input) {
    var initial = new URL(window.location.href).searchParams.get("q");
    if (initial) input.value = initial;
    input.addEventListener("input", applyFilter);
    input.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { input.value = ""; applyFilter(); }
    });
    applyFilter();
  }

  document.querySelectorAll("[data-toggle-all]").forEach(function (b) {
    b.addEventListener("click", function () {
      var open = b.getAttribute("data-toggle-all") === "open";
      groups.forEach(function (g) {
        if (!g.classList.contains("hidden")) g.open = open;
      });
    });
  });

  // ---- writes: delete one group, delete all ----
  function send(button, method, url, question) {
    if (!window.confirm(question)) return;
    button.disabled = true;
    fetch(url, { method: method, credentials: "same-origin" }).then(function (resp) {
      if (resp.ok) {
        window.location.reload();
        return;
      }
      return resp.text().then(function (text) {
        button.disabled = false;
        window.alert(method + " failed: " + resp.status + " " + resp.statusText + (text ? "\n" + text : ""));
      });
    }).catch(function (err) {
      button.disabled = false;
      window.alert(method + " failed: " + err);
    });
  }

  document.querySelectorAll("button[data-delete-url]").forEach(function (b) {
    b.addEventListener("click", function (e) {
      // The button sits in the group's <summary>: do not toggle the group.
      e.preventDefault();
      e.stopPropagation();
      send(b, "DELETE", b.getAttribute("data-delete-url"),
        "Delete the group {" + b.getAttribute("data-group") + "} on every node?");
    });
  });

  document.querySelectorAll("button[data-wipe-url]").forEach(function (b) {
    b.addEventListener("click", function () {
      send(b, "PUT", b.getAttribute("data-wipe-url"),
        "Delete ALL " + groups.length + " metric groups on every node? This cannot be undone.");
    });
  });

  // ---- delete all groups matching the selector (admin API) ----
  // A dry run first: the confirmation names how many groups the delete
  // would remove now, which may differ from the page if pushes came since.
  var delMatching = document.getElementById("delete-matching");
  if (delMatching) {
    delMatching.addEventListener("click", function () {
      var url = delMatching.getAttribute("data-delete-matching-url");
      var selector = delMatching.getAttribute("data-selector");
      delMatching.disabled = true;
      fetch(url + "&dry_run=true", { method: "PUT", credentials: "same-origin" }).then(function (resp) {
        return resp.text().then(function (text) {
          delMatching.disabled = false;
          if (!resp.ok) {
            window.alert("dry run failed: " + resp.status + " " + resp.statusText + (text ? "\n" + text : ""));
            return;
          }
          var n = JSON.parse(text).data.groups.length;
          if (n === 0) {
            window.alert("No group matches " + selector + " any more.");
            window.location.reload();
            return;
          }
          send(delMatching, "PUT", url,
            "Delete the " + n + (n === 1 ? " group" : " groups") + " matching " + selector + " on every node? This cannot be undone.");
        });
      }).catch(function (err) {
        delMatching.disabled = false;
        window.alert("dry run failed: " + err);
      });
    });
  }

  // ---- times: local time and age as a tooltip ----
  function age(ms) {
    var s = Math.round(ms / 1000);
    if (s < 0) return "in the future";
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s ago";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m ago";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h ago";
  }
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d.getTime())) t.title = d.toLocaleString() + " (" + age(Date.now() - d.getTime()) + ")";
  });
})();
