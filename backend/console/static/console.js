// The console's only script: live job list, live log, the run form's
// editor and input check. Everything a job printed goes in as textContent.
"use strict";
(function () {
  var csrf = document.querySelector('meta[name="csrf"]').content;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function jobsPage() {
    var tbody = document.querySelector("#jobs tbody");
    var empty = document.getElementById("empty");
    var cols = ["status", "type", "runtime", "agent", "created", "started", "finished", "duration", "exit"];
    function refresh() {
      fetch("/jobs.json" + location.search, { headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (d) {
          var rows = document.createDocumentFragment();
          d.jobs.forEach(function (j) {
            var tr = el("tr");
            tr.dataset.id = j.id;
            var a = el("a", "", j.id);
            a.href = "/jobs/" + encodeURIComponent(j.id);
            var td = el("td"); td.appendChild(a); tr.appendChild(td);
            cols.forEach(function (c) {
              var cell = el("td");
              if (c === "status") cell.appendChild(el("span", "st " + j.status, j.status));
              else cell.textContent = j[c] || "";
              tr.appendChild(cell);
            });
            rows.appendChild(tr);
          });
          tbody.replaceChildren(rows);
          empty.hidden = d.jobs.length > 0;
          document.getElementById("more").hidden = d.matched <= d.jobs.length;
          document.getElementById("shown").textContent = d.jobs.length;
          document.getElementById("matched").textContent = d.matched;
        })
        .catch(function () {})
        .finally(function () { setTimeout(refresh, 1000); });
    }
    setTimeout(refresh, 1000);
    var status = document.getElementById("status");
    status.addEventListener("change", function () { status.form.submit(); });
  }

  function line(l) {
    var cls = l.stream === "stdout" ? "out" : l.stream === "stderr" ? "err" : "sys";
    var d = el("div", "l " + cls, l.line);
    d.dataset.seq = l.seq;
    return d;
  }

  function jobPage() {
    var job = document.getElementById("job");
    var id = job.dataset.id;
    var log = document.getElementById("log");
    var after = Number(job.dataset.after);
    var first = Number(job.dataset.first);
    var follow = true;
    window.addEventListener("scroll", function () {
      follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    });
    function state() {
      return fetch("/jobs/" + encodeURIComponent(id) + "/state.json").then(function (r) { return r.json(); }).then(function (d) {
        var st = document.getElementById("job-status");
        st.textContent = d.status;
        st.className = "st " + d.status;
        ["started", "finished", "duration", "exit", "message", "condition", "output"].forEach(function (k) {
          document.getElementById("job-" + k).textContent = d[k] || "";
        });
        document.getElementById("cancel-form").hidden = d.final;
        job.dataset.final = d.final;
        var tb = document.querySelector("#executions tbody");
        var rows = document.createDocumentFragment();
        (d.executions || []).forEach(function (e) {
          var tr = el("tr");
          [e.id, e.server, e.status, e.exit].forEach(function (v) { tr.appendChild(el("td", "", v || "")); });
          var td = el("td");
          (e.phases || []).forEach(function (p) { td.appendChild(el("span", "ph", p[0] + ": " + p[1])); td.appendChild(document.createTextNode(" ")); });
          tr.appendChild(td);
          rows.appendChild(tr);
        });
        tb.replaceChildren(rows);
      }).catch(function () {});
    }
    if (job.dataset.final !== "true") {
      var es = new EventSource("/jobs/" + encodeURIComponent(id) + "/events?after=" + after);
      es.addEventListener("line", function (ev) {
        var l = JSON.parse(ev.data);
        if (l.seq <= after) return; // already shown
        after = l.seq;
        log.appendChild(line(l));
        if (follow) window.scrollTo(0, document.body.scrollHeight);
      });
      es.addEventListener("status", function (ev) {
        // Shown at once; the rest of the state follows from state.json.
        var st = document.getElementById("job-status");
        st.textContent = JSON.parse(ev.data);
        st.className = "st " + st.textContent;
        state();
      });
      es.addEventListener("end", function () { es.close(); state(); });
    }
    var earlier = document.getElementById("earlier");
    earlier.addEventListener("click", function () {
      var from = Math.max(0, first - 1001);
      fetch("/jobs/" + encodeURIComponent(id) + "/lines?after=" + from + "&before=" + first + "&limit=1000")
        .then(function (r) { return r.json(); })
        .then(function (d) {
          var frag = document.createDocumentFragment();
          d.lines.forEach(function (l) { frag.appendChild(line(l)); });
          log.insertBefore(frag, log.firstChild);
          if (d.lines.length) first = d.lines[0].seq;
          earlier.hidden = first <= 1 || d.lines.length === 0;
        });
    });
  }

  function runPage() {
    var script = document.getElementById("script");
    var gutter = document.getElementById("gutter");
    function numbers() {
      var n = script.value.split("\n").length, s = "";
      for (var i = 1; i <= n; i++) s += i + "\n";
      gutter.textContent = s;
      gutter.scrollTop = script.scrollTop;
    }
    script.addEventListener("input", numbers);
    script.addEventListener("scroll", function () { gutter.scrollTop = script.scrollTop; });
    script.addEventListener("keydown", function (e) {
      if (e.key === "Tab" && !e.shiftKey) {
        e.preventDefault();
        var s = script.selectionStart;
        script.setRangeText("    ", s, script.selectionEnd, "end");
        numbers();
      }
    });
    numbers();
    var input = document.getElementById("input");
    var err = document.getElementById("input-error");
    document.getElementById("run").addEventListener("submit", function (e) {
      var v = input.value.trim();
      if (v === "") { err.hidden = true; return; }
      try {
        var o = JSON.parse(v);
        if (o === null || typeof o !== "object" || Array.isArray(o)) throw new Error("not an object");
        err.hidden = true;
      } catch (x) {
        e.preventDefault();
        err.textContent = "Input is not a JSON object: " + x.message;
        err.hidden = false;
      }
    });
  }

  var page = document.body.dataset.page;
  if (page === "jobs") jobsPage();
  if (page === "job") jobPage();
  if (page === "run") runPage();
  void csrf;
})();
