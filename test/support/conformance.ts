// The shape shared by the conformance suites: each check gets a fresh fixture
// from the adapter under test and always cleans it up.
import test, { type ExecutionContext } from 'ava';

export function conformanceChecker<F extends { cleanup: () => Promise<void> }>(
  name: string,
  open: () => Promise<F>,
): (title: string, body: (t: ExecutionContext, fixture: F) => Promise<void>) => void {
  return (title, body) => {
    test(`${name}: ${title}`, async (t) => {
      const fixture = await open();
      try {
        await body(t, fixture);
      } finally {
        await fixture.cleanup();
      }
    });
  };
}
