/** Entry point of the null-sink process: prints `listening <port>` once ready; stops on SIGTERM. */
import { startNullSink } from './null-sink.js';

const { server, port } = await startNullSink(Number(process.argv[2] ?? 0));
process.stdout.write(`listening ${port}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
