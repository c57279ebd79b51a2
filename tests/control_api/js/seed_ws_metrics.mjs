// The seed's /ws/metrics example, as written, with only the host and the credential
// changed (docs/analytics.md, 6: a browser sends its bearer as a subprotocol).
// Run: NODE_EXTRA_CA_CERTS=ca.pem FLEETD_WS_URL=wss://host:port/ws/metrics \
//      FLEETD_TOKEN=fk_... node --experimental-websocket seed_ws_metrics.mjs
// Prints the first "metrics" message as JSON and exits 0; exits 1 on an error or close.

const url = process.env.FLEETD_WS_URL; // the seed: 'wss://api.fleetd.io/ws/metrics'
const token = process.env.FLEETD_TOKEN;

const ws = new WebSocket(url, ['fleetd.v1', 'fleetd.bearer.' + token]);
ws.onopen = () => {
  ws.send(JSON.stringify({ type: 'subscribe', metrics: ['cpu_usage', 'memory_usage'], interval: 5000 }));
};

ws.onmessage = (event) => {
  const message = JSON.parse(event.data);
  if (message.type !== 'metrics') {
    console.error('unexpected message: ' + event.data);
    process.exit(1);
  }
  if (ws.protocol !== 'fleetd.v1') {
    console.error('unexpected subprotocol: ' + ws.protocol);
    process.exit(1);
  }
  console.log(JSON.stringify(message));
  ws.close(1000);
  process.exit(0);
};
ws.onerror = (event) => {
  console.error('error: ' + (event.message || event.type));
  process.exit(1);
};
ws.onclose = (event) => {
  console.error(`closed before a metrics message: ${event.code} ${event.reason}`);
  process.exit(1);
};
setTimeout(() => {
  console.error('no metrics message within 20 s');
  process.exit(1);
}, 20000);
