/** Run a benchmark's `main` under a hard deadline; exit 0 when done, 1 on failure, 2 at the deadline. */
export function runBench(main: () => Promise<void>, deadlineMs: number): void {
  const deadline = setTimeout(() => {
    console.error('bench: deadline reached, aborting');
    process.exit(2);
  }, deadlineMs);
  deadline.unref();
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
