'use strict';
// Entry point read by `fabric-chaincode-node start` (package.json "main").
// The first contract listed is the default one: its functions are reachable
// both as "fn" and as "AssetContract:fn".
const AssetContract = require('./lib/asset-contract');

module.exports.AssetContract = AssetContract;
module.exports.contracts = [AssetContract];
