import { memoryEdgeState } from '../../src/registry/edge/memory-state.ts';
import { RedisEdgeState } from '../../src/registry/edge/redis-state.ts';
import { edgeStateContract } from './state.contract.ts';
import { redisSkip, redisUrl, uniquePrefix } from './redis.ts';
import { test } from 'node:test';

edgeStateContract('memory', async () => memoryEdgeState());

const skip = await redisSkip();
if (skip) test('redis edge state', { skip }, () => undefined);
else {
  // Memory state is per instance; Redis keys are namespaced per test so each test starts empty.
  edgeStateContract('redis', async () => new RedisEdgeState(redisUrl, uniquePrefix()));
}
