#!/usr/bin/env node
// The notifier service process. Configuration comes from the environment (see config.ts).
import { runService } from '@errand/service';
import { notifierService } from './service.js';

await runService(notifierService);
