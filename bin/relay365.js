#!/usr/bin/env node
// Installed entry point: the compiled CLI lives in dist/ (npm run build).
import '../dist/cli/run.js';
