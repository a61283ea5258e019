'use strict';
// Low-level fabric-shim chaincode for cclaunch tests. Started by Fabric as
//   npm start -- --peer.address <host:port>
// fabric-shim reads --peer.address from argv and CORE_CHAINCODE_ID_NAME from
// the environment. It needs no SignedProposal from the peer.
//
// Invoke functions: put(key, value), get(key) -> value, del(key),
// range(startKey, endKey) -> JSON [{"key":..,"value":..}] (exercises
// GET_STATE_BY_RANGE / QUERY_STATE_NEXT / QUERY_STATE_CLOSE).
// Anything else fails with "unknown function <name>".
const shim = require('fabric-shim');

function log(line) {
    console.log(`node-shim: ${line}`);
}

class Chaincode {
    async Init(stub) {
        log(`Init tx=${stub.getTxID()}`);
        return shim.success();
    }

    async Invoke(stub) {
        const { fcn, params } = stub.getFunctionAndParameters();
        log(`Invoke ${fcn} ${params.join(' ')}`.trimEnd());
        try {
            switch (fcn) {
            case 'put':
                if (params.length !== 2) {
                    return shim.error('put needs 2 arguments: key, value');
                }
                await stub.putState(params[0], Buffer.from(params[1]));
                return shim.success();
            case 'get': {
                if (params.length !== 1) {
                    return shim.error('get needs 1 argument: key');
                }
                const value = await stub.getState(params[0]);
                return shim.success(value);
            }
            case 'del':
                if (params.length !== 1) {
                    return shim.error('del needs 1 argument: key');
                }
                await stub.deleteState(params[0]);
                return shim.success();
            case 'range': {
                if (params.length !== 2) {
                    return shim.error('range needs 2 arguments: startKey, endKey');
                }
                const out = [];
                for await (const kv of stub.getStateByRange(params[0], params[1])) {
                    out.push({ key: kv.key, value: kv.value.toString() });
                }
                return shim.success(Buffer.from(JSON.stringify(out)));
            }
            default:
                return shim.error(`unknown function ${fcn}`);
            }
        } catch (err) {
            return shim.error(`${fcn} failed: ${err.message}`);
        }
    }
}

log('starting');
shim.start(new Chaincode());
