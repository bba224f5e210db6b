// Drives the official Socket.IO JS client; the pytest side reads window.results.
// Parameters come from the query string: server (origin), transport, room.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const transport = params.get("transport");
  const room = params.get("room");
  const results = (window.results = {
    connected: false, transport: null, auth: null, ack: null, binaryAck: null, whoami: null,
    serverAckRequest: null, clientAckReceived: null, joined: null, broadcasts: [], errors: [],
  });

  function render() {
    document.getElementById("results").textContent = JSON.stringify(results, null, 2);
    const done = results.joined && results.ack && results.binaryAck && results.clientAckReceived;
    const status = document.getElementById("status");
    status.textContent = results.errors.length ? "error" : done ? (results.broadcasts.length ? "room broadcast received" : "ready") : "working";
    status.className = results.errors.length ? "bad" : "ok";
  }

  document.getElementById("transport").textContent = transport;
  document.getElementById("client-version").textContent = typeof io === "function" ? "loaded" : "missing";

  const socket = io(params.get("server"), {
    transports: [transport],
    auth: { token: "browser", from: "chromium" },
    reconnection: false,
    timeout: 5000,
  });
  window.socket = socket;

  socket.on("connect_error", (error) => { results.errors.push("connect_error: " + error.message); render(); });
  socket.on("disconnect", (reason) => { results.errors.push("disconnect: " + reason); render(); });
  socket.on("auth", (auth) => { results.auth = auth; render(); });
  socket.on("broadcast", (...args) => { results.broadcasts.push(args); render(); });
  socket.on("server-ack-request", (...args) => {
    const ack = args.pop();
    results.serverAckRequest = args;
    ack("from-browser", ...args);
    render();
  });
  socket.on("client-ack-received", (...args) => { results.clientAckReceived = args; render(); });

  socket.on("connect", () => {
    results.connected = true;
    results.transport = socket.io.engine.transport.name;
    socket.emit("message-with-ack", { b: 1, a: [1, 2], big: 9007199254740991 }, "text", (...args) => {
      results.ack = args;
      render();
    });
    socket.emit("message-with-ack", new Uint8Array([0, 1, 2, 253, 254, 255]), (buffer) => {
      results.binaryAck = Array.from(new Uint8Array(buffer));
      render();
    });
    socket.emit("whoami", (identity) => { results.whoami = { ...identity, clientId: socket.id }; render(); });
    socket.emit("request-client-ack", "browser asks");
    socket.emit("join", room, (joinedRoom) => { results.joined = joinedRoom; render(); });
    render();
  });
  render();
})();
