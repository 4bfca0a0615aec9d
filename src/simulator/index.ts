export {
  defaultFleetOptions,
  EXPECTED_ALERTS,
  type FleetOptions,
  FleetSimulator,
  INCIDENT_TYPES,
  type IncidentRecord,
  type IncidentType,
} from './fleet.js';
export { NodeBatcher, runSimulation, type SimulationOptions, type SimulationReport } from './run.js';
