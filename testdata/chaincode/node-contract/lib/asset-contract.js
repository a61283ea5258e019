'use strict';
// A tiny asset store for cclaunch's end-to-end tests. Each transaction logs
// one line ("asset-contract: <Function> <id>") so tests can find chaincode
// output in the container log. Values are stored as JSON strings; ReadAsset
// returns the stored string unchanged.
const { Contract } = require('fabric-contract-api');

function log(fn, id) {
    console.log(`asset-contract: ${fn} ${id}`);
}

class AssetContract extends Contract {
    constructor() {
        super('AssetContract');
    }

    async _exists(ctx, id) {
        const data = await ctx.stub.getState(id);
        return Boolean(data && data.length > 0);
    }

    async CreateAsset(ctx, id, color) {
        log('CreateAsset', id);
        if (await this._exists(ctx, id)) {
            throw new Error(`asset ${id} already exists`);
        }
        const asset = { ID: id, Color: color };
        const json = JSON.stringify(asset);
        await ctx.stub.putState(id, Buffer.from(json));
        return json;
    }

    async ReadAsset(ctx, id) {
        log('ReadAsset', id);
        const data = await ctx.stub.getState(id);
        if (!data || data.length === 0) {
            throw new Error(`asset ${id} does not exist`);
        }
        return data.toString();
    }

    async UpdateAsset(ctx, id, color) {
        log('UpdateAsset', id);
        if (!(await this._exists(ctx, id))) {
            throw new Error(`asset ${id} does not exist`);
        }
        const json = JSON.stringify({ ID: id, Color: color });
        await ctx.stub.putState(id, Buffer.from(json));
        return json;
    }

    async DeleteAsset(ctx, id) {
        log('DeleteAsset', id);
        if (!(await this._exists(ctx, id))) {
            throw new Error(`asset ${id} does not exist`);
        }
        await ctx.stub.deleteState(id);
    }

    async AssetExists(ctx, id) {
        log('AssetExists', id);
        return (await this._exists(ctx, id)) ? 'true' : 'false';
    }
}

module.exports = AssetContract;
