// The admin page: connects to the /admin namespace with a token and asks for an overview
// of the cluster every second. Actions (send, disconnect, join, leave) are acknowledged by
// the node, which applies them cluster-wide through its adapter.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const COLORS = ["#2457c5", "#c4320a", "#067647", "#7a2ebd", "#b54708", "#0e7090", "#c11574", "#475467"];
  const WINDOW_SECONDS = 120;
  let token = params.get("token") || sessionStorage.getItem("admin.token") || "";
  if (params.has("token")) {
    // Out of the address bar (and so out of history and screenshots); kept for this tab.
    sessionStorage.setItem("admin.token", token);
    history.replaceState(null, "", location.pathname);
  }
  let socket = null;
  let pollTimer = null;
  const socketRows = new Map();  // socket id -> <tr>

  function setStatus(text, kind) {
    $("status").textContent = text;
    $("status").className = "status status-" + kind;
  }

  function notice(text) { $("notice").textContent = text; }

  function connect() {
    if (socket) socket.close();
    socket = io("/admin", { auth: (cb) => cb({ token }), transports: ["websocket", "polling"] });
    socket.on("connect", () => {
      setStatus("online", "online");
      $("login").hidden = true;
      $("dashboard").hidden = false;
      sessionStorage.setItem("admin.token", token);
      poll();
    });
    socket.on("connect_error", (error) => {
      const reason = (error.data && error.data.message) || error.message;
      setStatus("refused", "error");
      if (error.data && error.data.code) {
        // A refusal (not a network error): ask for a token instead of retrying.
        socket.close();
        sessionStorage.removeItem("admin.token");
        showLogin(reason);
      }
    });
    socket.on("disconnect", () => setStatus("offline", "offline"));
  }

  function showLogin(reason) {
    $("dashboard").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = reason || "";
    $("token-input").focus();
  }

  // One overview request at a time; a poll asked for meanwhile runs when it is answered.
  let polling = false;
  let pollAgain = false;
  function poll() {
    clearTimeout(pollTimer);
    if (!socket || !socket.connected) return;
    if (polling) { pollAgain = true; return; }
    polling = true;
    // A node that just died stays a member until its heartbeats expire: its requests
    // time out (5 s on the server), so the page waits longer than that.
    socket.timeout(10000).emit("admin:overview", null, (err, overview) => {
      polling = false;
      if (!err && overview) render(overview);
      pollTimer = setTimeout(poll, pollAgain ? 0 : 1000);
      pollAgain = false;
    });
  }

  function act(event, payload, what) {
    socket.timeout(5000).emit(event, payload, (err, reply) => {
      if (err) notice(what + ": no answer");
      else if (!reply.ok) notice(what + ": " + reply.error);
      else { notice(what + ": done"); poll(); }
    });
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function lastRate(node) {
    const rates = node.rates || [];
    return rates.length ? rates[rates.length - 1] : [0, 0, 0];
  }

  function formatUptime(seconds) {
    if (seconds == null) return "";
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
  }

  function render(overview) {
    document.body.classList.toggle("read-only", overview.readOnly);
    $("mode").hidden = !overview.readOnly;
    $("served-by").textContent = "served by " + overview.self + (overview.complete ? "" : " (some nodes did not answer)");
    renderNodes(overview.nodes);
    drawChart(overview.nodes, overview.time);
    renderRooms(overview.rooms, overview.roomCount);
    renderSockets(overview.sockets, overview.socketCount);
    renderEvents(overview.nodes);
  }

  function renderNodes(nodes) {
    const body = $("nodes").tBodies[0];
    body.replaceChildren();
    $("node-count").textContent = "(" + nodes.length + ")";
    nodes.forEach((node, index) => {
      const row = document.createElement("tr");
      row.dataset.node = node.node;
      const name = cell(row, node.node);
      name.style.color = COLORS[index % COLORS.length];
      if (node.silent) {
        cell(row, "—"); cell(row, ""); cell(row, "no answer", "not-ready"); cell(row, ""); cell(row, ""); cell(row, "");
      } else {
        const rate = lastRate(node);
        cell(row, String(node.clients), "num clients");
        cell(row, formatUptime(node.uptime), "num");
        const ready = cell(row, node.ready ? "ready" : "not ready", node.ready ? "ready" : "not-ready");
        ready.title = node.readiness;
        cell(row, node.broker);
        cell(row, String(rate[1]), "num rate-in");
        cell(row, String(rate[2]), "num rate-out");
      }
      body.appendChild(row);
    });
  }

  function drawChart(nodes, now) {
    const canvas = $("chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 900, height = canvas.clientHeight || 180;
    canvas.width = width * ratio; canvas.height = height * ratio;
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    let max = 1;
    for (const node of nodes) for (const r of node.rates || []) max = Math.max(max, r[1], r[2]);
    const left = 44, bottom = height - 18, top = 8, right = width - 8;
    const x = (t) => right - ((now - t) / WINDOW_SECONDS) * (right - left);
    const y = (v) => bottom - (v / max) * (bottom - top);
    g.strokeStyle = "#dde1e8"; g.fillStyle = "#667085"; g.font = "11px system-ui"; g.lineWidth = 1;
    for (const fraction of [0, 0.5, 1]) {
      const value = max * fraction;
      g.beginPath(); g.moveTo(left, y(value)); g.lineTo(right, y(value)); g.stroke();
      g.fillText(value >= 10 ? Math.round(value) : value.toFixed(1), 4, y(value) + 4);
    }
    g.fillText("-2 min", left, height - 4);
    g.fillText("now", right - 22, height - 4);
    const legend = $("legend");
    legend.replaceChildren();
    nodes.forEach((node, index) => {
      const color = COLORS[index % COLORS.length];
      const rates = (node.rates || []).filter((r) => now - r[0] <= WINDOW_SECONDS);
      for (const [column, dash] of [[2, []], [1, [4, 3]]]) {
        g.setLineDash(dash); g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
        rates.forEach((r, i) => (i ? g.lineTo(x(r[0]), y(r[column])) : g.moveTo(x(r[0]), y(r[column]))));
        g.stroke();
      }
      g.setLineDash([]);
      const item = document.createElement("span");
      item.style.setProperty("--swatch", color);
      item.textContent = node.node;
      legend.appendChild(item);
    });
    canvas.dataset.points = String(nodes.reduce((sum, node) => sum + (node.rates || []).length, 0));
    canvas.dataset.peak = String(max);
  }

  function renderRooms(rooms, total) {
    const body = $("rooms").tBodies[0];
    body.replaceChildren();
    $("room-count").textContent = "(" + total + ")";
    for (const room of rooms) {
      const row = document.createElement("tr");
      row.dataset.room = room.room;
      cell(row, "#" + room.room);
      cell(row, String(room.members), "num members");
      body.appendChild(row);
    }
  }

  function renderSockets(sockets, total) {
    const body = $("sockets").tBodies[0];
    $("socket-count").textContent = "(" + total + ")";
    const seen = new Set();
    for (const s of sockets) {
      seen.add(s.id);
      let row = socketRows.get(s.id);
      if (!row) {
        row = newSocketRow(s.id);
        socketRows.set(s.id, row);
        body.appendChild(row);
      }
      row.cells[0].textContent = s.name;
      row.cells[0].title = s.id + " from " + s.address;
      row.cells[1].textContent = s.node;
      row.cells[2].textContent = s.rooms.map((r) => "#" + r).join(" ");
    }
    for (const [id, row] of socketRows) {
      if (!seen.has(id)) { row.remove(); socketRows.delete(id); }
    }
  }

  function newSocketRow(id) {
    const row = document.createElement("tr");
    row.dataset.socket = id;
    cell(row, ""); cell(row, ""); cell(row, "");
    const actions = cell(row, "", "actions");
    const room = document.createElement("input");
    room.placeholder = "room"; room.maxLength = 32; room.setAttribute("aria-label", "Room for " + id);
    const join = document.createElement("button");
    join.type = "button"; join.textContent = "Join"; join.className = "join";
    join.onclick = () => act("admin:join", { id, room: room.value.trim() }, "join");
    const leave = document.createElement("button");
    leave.type = "button"; leave.textContent = "Leave"; leave.className = "leave";
    leave.onclick = () => act("admin:leave", { id, room: room.value.trim() }, "leave");
    const kick = document.createElement("button");
    kick.type = "button"; kick.textContent = "Disconnect"; kick.className = "danger disconnect";
    kick.onclick = () => act("admin:disconnect", { id }, "disconnect");
    actions.append(room, join, leave, kick);
    return row;
  }

  function renderEvents(nodes) {
    const events = [];
    for (const node of nodes) for (const e of node.events || []) events.push({ time: e[0], kind: e[1], detail: e[2], node: node.node });
    events.sort((a, b) => b.time - a.time);
    const list = $("events");
    list.replaceChildren();
    for (const e of events.slice(0, 100)) {
      const item = document.createElement("li");
      const time = new Date(e.time * 1000).toLocaleTimeString();
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = e.kind;
      item.append(time + " " + e.node + " ", kind, " " + e.detail);
      list.appendChild(item);
    }
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token-input").value.trim();
    connect();
  });
  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("send-text").value.trim();
    if (!text) return;
    act("admin:send", { room: $("send-room").value.trim(), text }, "send");
    $("send-text").value = "";
  });

  if (token) connect(); else { setStatus("signed out", "offline"); showLogin(""); }
})();
