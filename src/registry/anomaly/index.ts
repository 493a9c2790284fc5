export { anomalySchema, type AnomalySettings } from './config.ts';
export { type Alert, type AlertQuery, AnomalyDetector } from './detector.ts';
export { registerAlertRoutes } from './http.ts';
export { identityOf, networkOf } from './rules.ts';
export { type AnomalyState, MemoryAnomalyState } from './state.ts';
