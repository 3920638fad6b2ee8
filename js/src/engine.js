// @ts-check
// Where ELK runs: in a Web Worker, so a layout never blocks the page. elkjs's worker
// script is bundled gzip-compressed as base64 (build.mjs, module "elk-worker-source"),
// inflated with DecompressionStream and started from a Blob URL: anywidget loads this ESM from a blob/data URL, so there is no file to point a
// Worker at. Only when no Worker can be made (a browser or policy that forbids them) does
// ELK run on the page's main thread, and `engineMode()` says so for the widget to show.
// elkjs is slow until V8 has optimised it: `warmUp` has the idle worker lay out made-up
// graphs (warmup.js) so that real layouts find it fast.
import WORKER_GZ from "elk-worker-source";

// Appended to elkjs's worker: an ELK error is a GWT object that may not survive
// structured cloning; post its message instead of losing the answer. Each answer says how
// long ELK worked on it ("ms": elkjs answers synchronously from its message handler).
const WORKER_TAIL = `
;(() => {
  const post = self.postMessage.bind(self);
  const dispatch = self.onmessage;
  let t0 = 0;
  self.onmessage = (e) => { t0 = performance.now(); dispatch(e); };
  self.postMessage = (m) => {
    if (m && typeof m === "object") m.ms = performance.now() - t0;
    try { post(m); } catch (e) {
      const err = m && m.error;
      post({ id: m && m.id, ms: m && m.ms, error: { message: String((err && err.message) || err || e) } });
    }
  };
})();`;

const REGISTER = { cmd: "register", algorithms: ["layered"] };

/** @type {"worker" | "main" | null} */
let mode = null;
/** @type {any} */
let worker = null;
let workerAnswered = false;
let nextId = 1;
/** @type {Map<number, {msg: any, resolve: (v: any) => void, reject: (e: any) => void}>} */
const jobs = new Map();
/** @type {((msg: any) => Promise<any>) | null} */
let mainElk = null;
let fallbackReason = "";

/** Where the time goes (page clock, ms): for the widget's data attributes and benchmarks. */
const stats = {
  /** when the engine was started (module load) */
  startAt: 0,
  /** elkjs's script inflated (a Blob) */
  scriptMs: 0,
  /** the worker answered ELK's registration: script evaluated, ELK initialised */
  readyMs: 0,
  /** layouts ELK ran, and the time it worked on them (in the worker, or here) */
  runs: 0,
  computeMs: 0,
  /** warm-up layouts sent, and the time ELK worked on them */
  warmRuns: 0,
  warmMs: 0,
};

/** @type {Promise<Blob> | null} */
let scriptBlob = null;
/** elkjs's worker script (inflated once, natively and in chunks: no long task). */
function workerScript() {
  if (!scriptBlob) {
    const bin = atob(WORKER_GZ);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const inflated = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    scriptBlob = new Response(inflated).blob().then((blob) => {
      stats.scriptMs = performance.now() - stats.startAt;
      return blob;
    });
  }
  return scriptBlob;
}

/** @type {Promise<void> | null} */
let starting = null;
function startWorker() {
  mode = "worker";
  stats.startAt = performance.now();
  starting = Promise.resolve()
    .then(workerScript)
    .then((script) => {
      const url = URL.createObjectURL(new Blob([script, WORKER_TAIL], { type: "text/javascript" }));
      try {
        worker = new Worker(url, { name: "ezmsg-lab elk" });
      } catch (e) {
        useMainThread(String(e?.message || e));
        return;
      } finally {
        // The worker has fetched its script by the time it runs; the URL is not needed after.
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
      }
      wire(worker);
      for (const [id, job] of jobs) worker.postMessage({ ...job.msg, id });
    });
  starting.catch((e) => useMainThread(String(e?.message || e)));
  // ELK knows no algorithm until told: the first message, before any layout.
  send(REGISTER).catch(() => null);
}

function wire(worker) {
  worker.onmessage = (ev) => {
    workerAnswered = true;
    const job = jobs.get(ev.data?.id);
    if (!job) return;
    jobs.delete(ev.data.id);
    if (job.msg.cmd === "register") {
      stats.readyMs = performance.now() - stats.startAt;
      // Warm-up from now on, after any real layout queued before the worker was ready.
      setTimeout(warmNext, 0);
    } else if (job.msg.warm) stats.warmMs += ev.data.ms || 0;
    else if (job.msg.cmd === "layout") {
      stats.runs += 1;
      stats.computeMs += ev.data.ms || 0;
    }
    if (ev.data.error) job.reject(toError(ev.data.error));
    else job.resolve(ev.data.data);
  };
  worker.onerror = (ev) => {
    ev.preventDefault?.();
    const reason = ev.message || "the layout worker failed";
    worker.terminate();
    worker = null;
    starting = null;
    if (!workerAnswered) {
      // It never started (a policy against blob: workers): lay out here instead.
      useMainThread(reason);
    } else {
      // It crashed mid-way: fail what was asked, start a fresh worker next time.
      for (const [id, job] of jobs) {
        jobs.delete(id);
        job.reject(new Error(`layout worker: ${reason}`));
      }
    }
  };
}

function useMainThread(reason) {
  mode = "main";
  worker = null;
  fallbackReason = reason;
  console.warn(`[ezmsg-lab graph] no Web Worker for the layout (${reason}): laying out on the main thread`);
  // What was queued for the worker runs here (the registration first: insertion order).
  for (const [id, job] of jobs) {
    jobs.delete(id);
    runOnMain(job.msg).then(job.resolve, job.reject);
  }
}

/** elkjs's worker script run in this thread: its FakeWorker, with the same messages. */
function runOnMain(msg) {
  if (!mainElk) {
    const FakeWorker = workerScript()
      .then((script) => script.text())
      .then((source) => {
        const mod = { exports: /** @type {any} */ ({}) };
        // The script exports FakeWorker through `module` when it has one.
        new Function("module", "exports", source)(mod, mod.exports);
        return mod.exports.Worker;
      });
    const call = (m) =>
      FakeWorker.then(
        (Fake) =>
          new Promise((resolve, reject) => {
            const fake = new Fake();
            let t0 = 0;
            fake.onmessage = (ev) => {
              if (m.cmd === "layout") {
                stats.runs += 1;
                stats.computeMs += performance.now() - t0;
              }
              return ev.data.error ? reject(toError(ev.data.error)) : resolve(ev.data.data);
            };
            // The fake dispatches from a timer: its time starts there, not here.
            const post = fake.dispatcher.saveDispatch;
            fake.dispatcher.saveDispatch = (d) => {
              t0 = performance.now();
              post(d);
            };
            fake.postMessage({ ...m, id: 0 });
          }),
      );
    const ready = call(REGISTER);
    mainElk = (m) => ready.then(() => call(m));
  }
  return mainElk(msg);
}

function toError(err) {
  if (err instanceof Error) return err;
  return new Error(String(err?.message || err));
}

function send(msg) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    jobs.set(id, { msg, resolve, reject });
    // Before the worker exists the job waits in `jobs`; startWorker posts it.
    if (worker) worker.postMessage({ ...msg, id });
  });
}

function ensureEngine() {
  if (mode === "main" || (mode === "worker" && (worker || starting))) return;
  startWorker(); // the first time, or after a crash: a fresh one
}

/**
 * Lay out an ELK JSON graph (elkjs's `layout`): in the worker when there is one.
 * @param {any} graph
 * @returns {Promise<any>} the graph with positions
 */
export function layoutGraph(graph) {
  ensureEngine();
  const msg = { cmd: "layout", graph, layoutOptions: {}, options: {} };
  if (mode === "main") return runOnMain(msg);
  const done = send(msg);
  // The warm-up goes on when no real layout is left (a view's wrapped tries follow
  // each other within a task: they still go first).
  done.finally(() => setTimeout(warmNext, 0)).catch(() => null);
  return done;
}

/** @type {Array<() => any>} makers of ELK graphs to lay out, one by one, while no real layout waits */
let warmQueue = [];

/**
 * Start the worker and ELK's one-off set-up now rather than inside the first drawing, and
 * then lay out `graphs` (a made-up topology: warmup.js) one at a time, each only when no
 * real layout is waiting: a real one waits at most for the warm-up run in progress.
 * @param {Array<() => any>} [graphs] makers of ELK graphs (called when the graph is sent)
 */
export function warmUp(graphs = []) {
  ensureEngine();
  if (mode === "main") {
    // On the page's thread a warm-up would block the page: the set-up only.
    runOnMain(REGISTER).catch(() => null);
    return;
  }
  warmQueue = [...graphs];
  warmNext();
}

function warmNext() {
  if (!warmQueue.length) return;
  if (mode !== "worker" || !(worker || starting)) {
    warmQueue = []; // no worker (any more): no warm-up on the page's thread
    return;
  }
  if (!stats.readyMs) return; // started when ELK is ready (wire)
  for (const job of jobs.values()) if (job.msg.cmd === "layout") return; // resumed when it ends
  stats.warmRuns += 1;
  send({ cmd: "layout", graph: warmQueue.shift()(), layoutOptions: {}, options: {}, warm: true })
    .catch(() => null)
    .finally(warmNext);
}

/** True once the warm-up layouts are all done (or there were none). */
export function warmedUp() {
  if (warmQueue.length) return false;
  for (const job of jobs.values()) if (job.msg.warm) return false;
  return true;
}

/** "worker", "main" (no Web Worker: layouts block the page) or null (not started). */
export function engineMode() {
  return mode;
}

/** Where the layout engine's time went so far (a copy; see `stats`). */
export function engineStats() {
  return { ...stats };
}

/** Why the layout runs on the main thread ("" when it does not). */
export function fallbackNote() {
  return fallbackReason;
}
