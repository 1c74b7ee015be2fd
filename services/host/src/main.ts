#!/usr/bin/env node
// The host service process. Configuration comes from the environment (see config.ts).
import { runService } from '@errand/service';
import { hostService } from './service.js';

await runService(hostService);
