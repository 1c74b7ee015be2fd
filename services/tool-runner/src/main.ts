#!/usr/bin/env node
// The tool-runner service process. Configuration comes from the environment (see config.ts).
import { runService } from '@errand/service';
import { toolRunnerService } from './service.js';

await runService(toolRunnerService);
