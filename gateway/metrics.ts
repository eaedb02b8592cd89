import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one jitgate process (gateway and/or worker). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'jitgate_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'jitgate_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    jobs: new Counter({
      name: 'jitgate_jobs_total',
      help: 'Jobs processed by name and outcome',
      labelNames: ['name', 'outcome'] as const,
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'jitgate_job_duration_seconds',
      help: 'Job processing time',
      labelNames: ['name'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    liveSessions: new Gauge({ name: 'jitgate_live_sessions', help: 'Sessions being provisioned or active', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
