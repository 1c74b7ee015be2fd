#!/usr/bin/env node
// The planner service process. Configuration comes from the environment (see config.ts).
import { runService } from '@errand/service';
import { plannerService } from './service.js';

await runService(plannerService);
