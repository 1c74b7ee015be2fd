#!/usr/bin/env node
// The gateway service process. Configuration comes from the environment (see config.ts).
import { runService } from '@errand/service';
import { gatewayService } from './service.js';

await runService(gatewayService);
