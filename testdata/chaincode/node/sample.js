'use strict';
// Sample Node.js "chaincode" for cclaunch tests. No dependencies: it does not
// speak the chaincode protocol, it only reports what the launcher gave it
// (args, env, TLS files) and whether the peer address accepts TCP.
//
// Fabric starts a Node chaincode as: npm start -- --peer.address <host:port>
const fs = require('fs');
const net = require('net');

const NAME = 'sample-node';
const args = process.argv.slice(2);
console.log(`${NAME} starting args=${JSON.stringify(args)}`);

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  console.log(`${NAME} stopping`);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

// Accepts --peer.address X, --peer.address=X, -peer.address X.
function peerAddress(argv) {
  for (let i = 0; i < argv.length; i++) {
    for (const flag of ['--peer.address', '-peer.address']) {
      if (argv[i].startsWith(flag + '=')) return argv[i].slice(flag.length + 1);
      if (argv[i] === flag && i + 1 < argv.length) return argv[i + 1];
    }
  }
  return '';
}

function readEnvFile(key) {
  const path = process.env[key];
  if (!path) throw new Error(`${key} not set`);
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new Error(`${key}: cannot read ${path}: ${e.code || e.message}`);
  }
}

// Never puts file contents in its errors.
function checkTLS() {
  const files = {};
  for (const k of ['CORE_TLS_CLIENT_KEY_PATH', 'CORE_TLS_CLIENT_CERT_PATH',
    'CORE_TLS_CLIENT_KEY_FILE', 'CORE_TLS_CLIENT_CERT_FILE', 'CORE_PEER_TLS_ROOTCERT_FILE']) {
    files[k] = readEnvFile(k);
  }
  const begin = Buffer.from('-----BEGIN');
  for (const [b64, pem] of [['CORE_TLS_CLIENT_KEY_PATH', 'CORE_TLS_CLIENT_KEY_FILE'],
    ['CORE_TLS_CLIENT_CERT_PATH', 'CORE_TLS_CLIENT_CERT_FILE']]) {
    const text = files[b64].toString('latin1').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
      throw new Error(`${b64} is not valid base64`);
    }
    const decoded = Buffer.from(text, 'base64');
    if (!decoded.equals(files[pem])) {
      throw new Error(`base64-decoded ${b64} differs from ${pem} (${decoded.length} vs ${files[pem].length} bytes)`);
    }
    if (!decoded.subarray(0, begin.length).equals(begin)) throw new Error(`decoded ${b64} is not PEM`);
  }
  for (const k of ['CORE_TLS_CLIENT_KEY_FILE', 'CORE_TLS_CLIENT_CERT_FILE', 'CORE_PEER_TLS_ROOTCERT_FILE']) {
    if (!files[k].subarray(0, begin.length).equals(begin)) throw new Error(`${k} is not PEM`);
  }
}

function connect(addr) {
  return new Promise((resolve) => {
    if (!addr) {
      resolve(`peer unreachable ${addr}: no --peer.address in args`);
      return;
    }
    const idx = addr.lastIndexOf(':');
    const host = addr.slice(0, idx).replace(/^\[(.*)\]$/, '$1');
    const port = Number(addr.slice(idx + 1));
    if (idx < 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      resolve(`peer unreachable ${addr}: bad address`);
      return;
    }
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(`peer unreachable ${addr}: timeout after 3s`);
    }, 3000);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(`peer connected ${addr}`);
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      resolve(`peer unreachable ${addr}: ${e.message}`);
    });
  });
}

async function main() {
  const addr = peerAddress(args);
  for (const k of ['CORE_CHAINCODE_ID_NAME', 'CORE_PEER_TLS_ENABLED', 'CORE_PEER_LOCALMSPID']) {
    console.log(`env ${k}=${process.env[k] || ''}`);
  }
  if (process.env.CORE_PEER_TLS_ENABLED === 'true') {
    try {
      checkTLS();
      console.log('tls ok');
    } catch (e) {
      console.log(`tls bad: ${e.message}`);
    }
  }
  console.log(await connect(addr));
  console.log(`${NAME} ready`);
  // Stay alive until a signal arrives.
  setInterval(() => {}, 1 << 30);
}

main();
