export {
  defaultFleetOptions,
  type FleetOptions,
  FleetSimulator,
  INCIDENT_TYPES,
  type IncidentRecord,
  type IncidentType,
} from './fleet.js';
export { runSimulation, type SimulationOptions, type SimulationReport } from './run.js';
