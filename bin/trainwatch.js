#!/usr/bin/env node
// The compiled CLI lives in dist/ (npm run build).
import { main } from '../dist/cli/main.js';

await main(process.argv);
