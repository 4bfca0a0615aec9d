import { parentPort, workerData } from 'node:worker_threads';
import { labelsKey } from './labels.js';

parentPort!.postMessage(labelsKey(workerData as Record<string, string>));
