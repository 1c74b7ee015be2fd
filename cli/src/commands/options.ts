import { InvalidArgumentError } from 'commander';

export function parseReplicas(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new InvalidArgumentError('replicas must be a whole number from 1 to 5.');
  return n;
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('port must be a whole number from 0 to 65535 (0: any free port).');
  return n;
}
