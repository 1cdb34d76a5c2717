/** The counting proxy in its own process, so that its CPU time is not billed to either side. */
import { startRpcProxy } from '../test/support/rpcProxy.js';

const proxy = await startRpcProxy(process.argv[2]!);
process.stdout.write(`${proxy.url}\n`);
