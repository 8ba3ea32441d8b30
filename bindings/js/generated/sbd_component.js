"use components";
export function instantiate(getCoreModule, imports, instantiateCore = WebAssembly.instantiate) {
  
  const emptyFunc = () => {};
  
  let dv = new DataView(new ArrayBuffer());
  const dataView = mem => dv.buffer === mem.buffer ? dv : dv = new DataView(mem.buffer);
  
  function toUint64(val) {
    const converted = BigInt(val)
    
    return BigInt.asUintN(64, converted);
  }
  
  
  function toUint16(val) {
    
    val >>>= 0;
    val %= 2 ** 16;
    return val;
  }
  
  
  function toUint8(val) {
    
    val >>>= 0;
    val %= 2 ** 8;
    return val;
  }
  
  
  function _isValidNumericPrimitive(ty, v) {
    if (v === undefined || v === null) { return false; }
    switch (ty) {
      case 'bool':
      return v === 0 || v === 1;
      break;
      case 'u8':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255;
      break;
      case 's8':
      return typeof v === 'number' && Number.isInteger(v) && v >= -128 && v <= 127;
      break;
      case 'u16':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535;
      break;
      case 's16':
      return typeof v === 'number' && Number.isInteger(v) && v >= -32768 && v <= 32767;
      case 'u32':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 4_294_967_295;
      case 's32':
      return typeof v === 'number' && Number.isInteger(v) && v >= -2_147_483_648 && v <= 2_147_483_647;
      case 'u64':
      return typeof v === 'bigint' && v >= 0 && v <= 18_446_744_073_709_551_615n;
      case 's64':
      return typeof v === 'bigint' && v >= -9223372036854775808n && v <= 9223372036854775807n;
      break;
      case 'f32':
      case 'f64': return typeof v === 'number';
      default:
      return false;
    }
    return true;
  }
  
  function _requireValidNumericPrimitive(ty, v) {
    if (v === undefined  || v === null || !_isValidNumericPrimitive(ty, v)) {
      throw new TypeError(`invalid ${ty} value [${v}]`);
    }
    return true;
  }
  const TEXT_DECODER_UTF8 = new TextDecoder();
  const TEXT_ENCODER_UTF8 = new TextEncoder();
  
  function _utf8AllocateAndEncode(s, realloc, memory) {
    if (typeof s !== 'string') {
      throw new TypeError('expected a string, received [' + typeof s + ']');
    }
    if (s.length === 0) { return { ptr: 1, len: 0 }; }
    // Compute the exact allocation size up front. Some older preview1
    // adapters only support an initial allocation, not a subsequent shrink.
    let len = 0;
    let codepoints = 0;
    for (let i = 0; i < s.length; i++) {
      const ch = s.charCodeAt(i);
      codepoints++;
      if (ch < 0x80) { len += 1; }
      else if (ch < 0x800) { len += 2; }
      else if (ch >= 0xd800 && ch <= 0xdbff &&
      i + 1 < s.length &&
      (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        len += 4;
        i++;
      } else { len += 3; }
    }
    const ptr = realloc(0, 0, 1, len);
    const { read, written } = TEXT_ENCODER_UTF8.encodeInto(
    s,
    new Uint8Array(memory.buffer, ptr, len),
    );
    if (read !== s.length || written !== len) {
      throw new Error('failed to encode whole string');
    }
    const res = { ptr, len, codepoints };
    return res;
  }
  
  const T_FLAG = 1 << 30;
  
  function rscTableCreateOwn(table, rep) {
    const free = table[0] & ~T_FLAG;
    table._createdReps.add(rep);
    if (free === 0) {
      table.push(0);
      table.push(rep | T_FLAG);
      return (table.length >> 1) - 1;
    }
    table[0] = table[free << 1];
    table[free << 1] = 0;
    table[(free << 1) + 1] = rep | T_FLAG;
    return free;
  }
  
  const RESOURCE_SCOPE_TASKS = new Map();
  const WebAssemblyRuntimeError = WebAssembly.RuntimeError;
  
  function rscTableRemove(table, handle) {
    const scope = table[handle << 1];
    const val = table[(handle << 1) + 1];
    const own = (val & T_FLAG) !== 0;
    const rep = val & ~T_FLAG;
    if (val === 0 || (scope & T_FLAG) !== 0) {
      // Resource entries occupy scope/rep pairs after the table sentinel.
      throw new WebAssemblyRuntimeError(`unknown handle index ${(handle << 1) + 1}`);
    }
    if (own && scope !== 0) {
      throw new WebAssemblyRuntimeError('cannot remove owned resource while borrowed');
    }
    const borrowTask = own ? undefined : RESOURCE_SCOPE_TASKS.get(scope);
    table[handle << 1] = table[0] | T_FLAG;
    table[0] = handle | T_FLAG;
    borrowTask?.removeBorrowedHandle();
    return { rep, scope, own };
  }
  
  let RESOURCE_SCOPE_ID = 0;
  const ASYNC_TASKS_BY_COMPONENT_IDX = new Map();
  const ASYNC_CURRENT_TASK_IDS = [];
  const ASYNC_CURRENT_COMPONENT_IDXS = [];
  
  const _debugLog = (...args) => {
    if (!globalThis?.process?.env?.JCO_DEBUG) { return; }
    console.debug(...args);
  };
  
  function clearCurrentTask(componentIdx, taskID) {
    _debugLog('[clearCurrentTask()] args', { componentIdx, taskID });
    
    if (componentIdx === undefined || componentIdx === null) {
      throw new Error('missing/invalid component instance index while ending current task');
    }
    
    const tasks = ASYNC_TASKS_BY_COMPONENT_IDX.get(componentIdx);
    if (!tasks || !Array.isArray(tasks)) {
      throw new Error('missing/invalid tasks for component instance while ending task');
    }
    if (tasks.length == 0) {
      throw new Error(`no current tasks for component instance [${componentIdx}] while ending task`);
    }
    
    if (taskID !== undefined) {
      const last = tasks[tasks.length - 1];
      if (last.id !== taskID) {
        // throw new Error('current task does not match expected task ID');
        return;
      }
    }
    
    ASYNC_CURRENT_TASK_IDS.pop();
    ASYNC_CURRENT_COMPONENT_IDXS.pop();
    
    const taskMeta = tasks.pop();
    return taskMeta.task;
  }
  const ASYNC_STATE = new Map();
  
  function promiseWithResolvers() {
    if (Promise.withResolvers) {
      return Promise.withResolvers();
    } else {
      let resolve;
      let reject;
      const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    }
  }
  
  class Waitable {
    #componentIdx;
    
    #pendingEventFn = null;
    
    #promise;
    #resolve;
    #reject;
    
    #waitableSet = null;
    
    #hasSyncWaiter = false;
    
    #idx = null; // to component-global waitables
    
    target;
    
    constructor(args) {
      const { componentIdx, target } = args;
      this.#componentIdx = componentIdx;
      this.target = args.target;
      this.#resetPromise();
    }
    
    componentIdx() { return this.#componentIdx; }
    isInSet() { return this.#waitableSet !== null; }
    
    idx() { return this.#idx; }
    setIdx(idx) {
      if (idx === 0) { throw new Error("waitable idx cannot be zero"); }
      this.#idx = idx;
    }
    
    setTarget(tgt) { this.target = tgt; }
    
    #resetPromise() {
      const { promise, resolve, reject } = promiseWithResolvers()
      this.#promise = promise;
      this.#resolve = resolve;
      this.#reject = reject;
    }
    
    resolve() { this.#resolve(); }
    reject(err) { this.#reject(err); }
    promise() { return this.#promise; }
    
    hasPendingEvent() {
      // _debugLog('[Waitable#hasPendingEvent()]', {
        //     componentIdx: this.#componentIdx,
        //     waitable: this,
        //     waitableSet: this.#waitableSet,
        //     hasPendingEvent: this.#pendingEventFn !== null,
        // });
        return this.#pendingEventFn !== null;
      }
      
      setPendingEvent(fn) {
        _debugLog('[Waitable#setPendingEvent()] args', {
          waitable: this,
          inSet: this.#waitableSet,
        });
        this.#pendingEventFn = fn;
      }
      
      getPendingEvent() {
        _debugLog('[Waitable#getPendingEvent()] args', {
          waitable: this,
          inSet: this.#waitableSet,
          hasPendingEvent: this.#pendingEventFn !== null,
        });
        if (this.#pendingEventFn === null) { return null; }
        const eventFn = this.#pendingEventFn;
        this.#pendingEventFn = null;
        const e = eventFn();
        this.#resetPromise();
        return e;
      }
      
      join(waitableSet) {
        _debugLog('[Waitable#join()] args', {
          waitable: this,
          waitableSet: waitableSet,
          isRemoval: waitableSet === null,
        });
        
        if (this.#waitableSet === undefined) {
          throw new TypeError('waitable set must be not be undefined');
        }
        
        if (this.#waitableSet) {
          this.#waitableSet.removeWaitable(this);
        }
        
        this.#waitableSet = waitableSet;
        
        if (waitableSet) {
          this.#waitableSet.addWaitable(this);
        }
      }
      
      drop() {
        _debugLog('[Waitable#drop()] args', {
          componentIdx: this.#componentIdx,
          waitable: this,
        });
        if (this.hasPendingEvent()) {
          throw new Error('waitables with pending events cannot be dropped');
        }
        this.join(null);
      }
      
      async waitForPendingEvent(args) {
        const { cstate } = args;
        if (!cstate) { throw new TypeError('missing component state'); }
        
        if (this.#waitableSet !== null || this.#hasSyncWaiter) {
          throw new Error("waitable is already in a set/has a sync waiter");
        }
        this.#hasSyncWaiter = true;
        await cstate.waitUntil({
          cancellable: false,
          readyFn: () => this.hasPendingEvent(),
        });
        this.#hasSyncWaiter = false;
      }
      
    }
    const INSTANCE_FLAGS = new Map();
    const STORE_TRAP = { error: null };
    const STORE_ASYNC_STATE = { deadlockCheck: null, pendingHostOperations: 0 };
    
    function _checkForDeadlock() {
      if (STORE_ASYNC_STATE.deadlockCheck !== null || STORE_TRAP.error !== null) { return; }
      STORE_ASYNC_STATE.deadlockCheck = setTimeout(() => {
        STORE_ASYNC_STATE.deadlockCheck = null;
        if (STORE_TRAP.error !== null || STORE_ASYNC_STATE.pendingHostOperations > 0) { return; }
        
        const suspendedTasks = new Set();
        for (const state of ASYNC_STATE.values()) {
          if (state.hasPendingSchedulerWork()) {
            state.runTickLoop();
            return;
          }
          for (const meta of state.suspendedTaskMetas()) {
            suspendedTasks.add(meta.task);
          }
        }
        
        const unresolvedRoots = new Set();
        for (const task of suspendedTasks) {
          const root = task.getRootTask();
          if (!root.isResolvedState()) { unresolvedRoots.add(root); }
        }
        if (unresolvedRoots.size === 0) { return; }
        
        const err = new WebAssemblyRuntimeError('wasm trap: deadlock detected: event loop cannot make further progress');
        // Which tasks were waiting, and on whose behalf. The message stays
        // exactly what the Canonical ABI calls for, so this rides alongside
        // it: a deadlock reported from a real program is otherwise a bare
        // sentence, and the state that produced it is gone by the time
        // anyone reads the failure.
        err.deadlockDetail = {
          pendingHostOperations: STORE_ASYNC_STATE.pendingHostOperations,
          suspendedTasks: [...suspendedTasks].map((task) => ({
            taskID: task.id(),
            componentIdx: task.componentIdx(),
            state: task.taskState(),
            rootTaskID: task.getRootTask().id(),
          })),
          unresolvedRootTaskIDs: [...unresolvedRoots].map((root) => root.id()),
        };
        STORE_TRAP.error = err;
        for (const root of unresolvedRoots) {
          root.setErrored(err);
          root.reject(err);
        }
        for (const task of suspendedTasks) {
          if (!task.isResolvedState() && unresolvedRoots.has(task.getRootTask())) {
            task.setErrored(err);
            task.reject(err);
          }
        }
        for (const state of ASYNC_STATE.values()) { state.runTickLoop(); }
      }, 0);
    }
    
    const CORE_TRAP_MESSAGES = new Map([
    ['unreachable', "wasm trap: wasm `unreachable` instruction executed"],
    ['memory access out of bounds', "wasm trap: out of bounds memory access"],
    ['divide by zero', "wasm trap: integer divide by zero"],
    ['remainder by zero', "wasm trap: integer divide by zero"],
    ['divide result unrepresentable', "wasm trap: integer overflow"],
    ['float unrepresentable in integer range', "wasm trap: invalid conversion to integer"],
    ['table index is out of bounds', "wasm trap: undefined element: out of bounds table access"],
    ['function signature mismatch', "wasm trap: indirect call type mismatch"],
    ['call stack exhausted', "wasm trap: call stack exhausted"],
    ]);
    function _normalizeCoreTrap(err) {
      if (!(err instanceof WebAssemblyRuntimeError)) { return err; }
      const message = CORE_TRAP_MESSAGES.get(err.message);
      if (message !== undefined) { err.message = message; }
      return err;
    }
    
    class RepTable {
      // Sentinel marking a freed slot; the freelist link for a freed slot
      // lives in the odd cell. This keeps get()/contains()/remove() on freed
      // reps well-defined (previously they returned/corrupted freelist links).
      static FREE = Symbol('RepTable.free');
      
      #data = [0, null];
      #size = 0;
      #target;
      
      constructor(args) {
        this.target = args?.target;
      }
      
      data() { return this.#data; }
      
      insert(val) {
        _debugLog('[RepTable#insert()] args', { val, target: this.target });
        const freeIdx = this.#data[0];
        if (freeIdx === 0) {
          this.#data.push(val);
          this.#data.push(null);
          const rep = (this.#data.length >> 1) - 1;
          _debugLog('[RepTable#insert()] inserted', { val, target: this.target, rep });
          this.#size += 1;
          return rep;
        }
        const placementIdx = freeIdx << 1;
        if (this.#data[placementIdx] !== RepTable.FREE) {
          throw new Error('corrupt rep table freelist: head does not point at a freed slot');
        }
        this.#data[0] = this.#data[placementIdx + 1];
        this.#data[placementIdx] = val;
        this.#data[placementIdx + 1] = null;
        _debugLog('[RepTable#insert()] inserted', { val, target: this.target, rep: freeIdx });
        this.#size += 1;
        return freeIdx;
      }
      
      get(rep) {
        _debugLog('[RepTable#get()] args', { rep, target: this.target });
        if (rep === 0) { throw new Error('invalid resource rep during get, (cannot be 0)'); }
        
        const baseIdx = rep << 1;
        const val = this.#data[baseIdx];
        if (val === RepTable.FREE) { return undefined; }
        return val;
      }
      
      contains(rep) {
        _debugLog('[RepTable#contains()] args', { rep, target: this.target });
        if (rep === 0) { throw new Error('invalid resource rep during contains, (cannot be 0)'); }
        
        const baseIdx = rep << 1;
        const val = this.#data[baseIdx];
        return val !== RepTable.FREE && !!val;
      }
      
      remove(rep) {
        _debugLog('[RepTable#remove()] args', { rep, target: this.target });
        if (rep === 0) { throw new Error('invalid resource rep during remove, (cannot be 0)'); }
        if (this.#data.length === 2) { throw new Error('invalid'); }
        
        const baseIdx = rep << 1;
        if (baseIdx >= this.#data.length) {
          throw new Error(`invalid rep [${rep}] during remove, out of range`);
        }
        const val = this.#data[baseIdx];
        if (val === RepTable.FREE) {
          throw new Error(`double removal of rep [${rep}] (already freed)`);
        }
        
        this.#data[baseIdx] = RepTable.FREE;
        this.#data[baseIdx + 1] = this.#data[0];
        this.#data[0] = rep;
        this.#size -= 1;
        
        return val;
      }
      
      size() { return this.#size; }
      
      clear() {
        _debugLog('[RepTable#clear()] args', { rep, target: this.target });
        this.#data = [0, null];
      }
    }
    
    class ComponentAsyncState {
      static EVENT_HANDLER_EVENTS = [ 'backpressure-change' ];
      
      static TickResult = {
        // no suspended tasks remain
        DONE: 'done',
        // a suspended task was resumed (more may be ready)
        RESUMED: 'resumed',
        // suspended tasks remain but none were ready
        IDLE: 'idle',
      };
      
      #componentIdx;
      #callingAsyncImport = false;
      #syncImportWait = promiseWithResolvers();
      #lockHolderTaskID = null;
      #lockWaiters = [];
      #lockHandoffScheduled = false;
      #pendingTaskStarts = 0;
      #parkedTasks = new Map();
      #suspendedTasksByTaskID = new Map();
      #suspendedTaskIDs = [];
      #errored = null;
      #trapped = false;
      #backpressure = 0;
      #backpressureWaiters = 0n;
      
      #handlerMap = new Map();
      #nextHandlerID = 0n;
      
      #tickLoop = null;
      #tickLoopInterval = null;
      
      #onExclusiveReleaseHandlers = [];
      
      #mayLeave = true;
      
      handles;
      subtasks;
      
      constructor(args) {
        this.#componentIdx = args.componentIdx;
        this.handles = new RepTable({ target: `component [${this.#componentIdx}] handles (waitable objects)` });
        this.subtasks = new RepTable({ target: `component [${this.#componentIdx}] subtasks` });
      };
      
      componentIdx() { return this.#componentIdx; }
      
      get mayLeave() {
        const flags = INSTANCE_FLAGS.get(this.#componentIdx);
        return flags === undefined ? this.#mayLeave : flags.value === 1;
      }
      set mayLeave(value) {
        if (typeof value !== 'boolean') { throw new TypeError('mayLeave must be a boolean'); }
        this.#mayLeave = value;
        const flags = INSTANCE_FLAGS.get(this.#componentIdx);
        if (flags !== undefined) { flags.value = value ? 1 : 0; }
      }
      
      errored() { return this.#errored !== null; }
      setErrored(err) {
        _debugLog('[ComponentAsyncState#setErrored()] component errored', { err, componentIdx: this.#componentIdx });
        if (this.#errored) { return; }
        if (!err) {
          err = new Error('error elswehere (see other component instance error)')
          err.componentIdx = this.#componentIdx;
        }
        this.#errored = err;
      }
      
      markTrapped(err) {
        if (!(err instanceof WebAssemblyRuntimeError)) {
          return false;
        }
        err = _normalizeCoreTrap(err);
        this.#trapped = true;
        _debugLog('[ComponentAsyncState#markTrapped()] component trapped', { err, componentIdx: this.#componentIdx });
        if (STORE_TRAP.error === null) { STORE_TRAP.error = err; }
        return true;
      }
      
      throwIfTrapped() {
        if (this.#trapped) {
          throw new WebAssemblyRuntimeError("wasm trap: cannot enter component instance");
        }
      }
      
      callingSyncImport(val) {
        if (val === undefined) { return this.#callingAsyncImport; }
        if (typeof val !== 'boolean') { throw new TypeError('invalid setting for async import'); }
        const prev = this.#callingAsyncImport;
        this.#callingAsyncImport = val;
        if (prev === true && this.#callingAsyncImport === false) {
          this.#notifySyncImportEnd();
        }
      }
      
      #notifySyncImportEnd() {
        const existing = this.#syncImportWait;
        this.#syncImportWait = promiseWithResolvers();
        existing.resolve();
      }
      
      async waitForSyncImportCallEnd() {
        await this.#syncImportWait.promise;
      }
      
      setBackpressure(v) {
        this.#backpressure = v;
        return this.#backpressure
      }
      getBackpressure() { return this.#backpressure; }
      
      incrementBackpressure() {
        const current = this.#backpressure;
        if (current < 0 || current > 2**16) {
          throw new Error(`invalid current backpressure value [${current}]`);
        }
        const newValue = this.getBackpressure() + 1;
        if (newValue >= 2**16) {
          throw new Error(`invalid new backpressure value [${newValue}], overflow`);
        }
        return this.setBackpressure(newValue);
      }
      
      decrementBackpressure() {
        const current = this.#backpressure;
        if (current < 0 || current > 2**16) {
          throw new Error(`invalid current backpressure value [${current}]`);
        }
        const newValue = Math.max(0, current - 1);
        if (newValue < 0) {
          throw new Error(`invalid new backpressure value [${newValue}], underflow`);
        }
        return this.setBackpressure(newValue);
      }
      hasBackpressure() { return this.#backpressure > 0; }
      
      waitForBackpressure() {
        let backpressureCleared = false;
        const cstate = this;
        cstate.addBackpressureWaiter();
        const handlerID = this.registerHandler({
          event: 'backpressure-change',
          fn: (bp) => {
            if (bp === 0) {
              cstate.removeHandler(handlerID);
              backpressureCleared = true;
            }
          }
        });
        return new Promise((resolve) => {
          const interval = setInterval(() => {
            if (backpressureCleared) { return; }
            clearInterval(interval);
            cstate.removeBackpressureWaiter();
            resolve(null);
          }, 0);
        });
      }
      
      registerHandler(args) {
        const { event, fn } = args;
        if (!event) { throw new Error("missing handler event"); }
        if (!fn) { throw new Error("missing handler fn"); }
        
        if (!ComponentAsyncState.EVENT_HANDLER_EVENTS.includes(event)) {
          throw new Error(`unrecognized event handler [${event}]`);
        }
        
        const handlerID = this.#nextHandlerID++;
        let handlers = this.#handlerMap.get(event);
        if (!handlers) {
          handlers = [];
          this.#handlerMap.set(event, handlers)
        }
        
        handlers.push({ id: handlerID, fn, event });
        return handlerID;
      }
      
      removeHandler(args) {
        const { event, handlerID } = args;
        const registeredHandlers = this.#handlerMap.get(event);
        if (!registeredHandlers) { return; }
        const found = registeredHandlers.find(h => h.id === handlerID);
        if (!found) { return; }
        this.#handlerMap.set(event, this.#handlerMap.get(event).filter(h => h.id !== handlerID));
      }
      
      getBackpressureWaiters() { return this.#backpressureWaiters; }
      addBackpressureWaiter() { this.#backpressureWaiters++; }
      removeBackpressureWaiter() {
        this.#backpressureWaiters--;
        if (this.#backpressureWaiters < 0) {
          throw new Error("unexepctedly negative number of backpressure waiters");
        }
      }
      
      // The per-slice mutual-exclusion lock for guest execution in this
      // component instance. Guest slices (callback invocations and
      // sync-lifted bodies) must be atomic per component even across the
      // JSPI suspensions jco introduces for host imports: wit-bindgen's
      // executors publish per-task state in single linear-memory cells
      // (the wasip3-task pointer, context-local storage discipline) that
      // an interleaved slice of the same component corrupts
      //
      // The lock is *owned*: acquisition records the holder task and
      // release is a no-op for anyone else, so a task exiting can no
      // longer drop a hold it does not own (blind acquire/release-any
      // was the previous discipline). Contended acquisition queues
      // FIFO; release hands the lock to the next waiter directly.
      isExclusivelyLocked() { return this.#lockHolderTaskID !== null; }
      exclusivelyLockedBy(taskID) { return this.#lockHolderTaskID === taskID; }
      
      exclusiveLock(taskID) {
        _debugLog('[ComponentAsyncState#exclusiveLock()]', {
          holder: this.#lockHolderTaskID,
          requester: taskID,
          componentIdx: this.#componentIdx,
        });
        if (taskID === undefined || taskID === null) {
          throw new Error('exclusive lock requires the acquiring task id');
        }
        if (this.#lockHolderTaskID !== null) {
          throw new Error(`component [${this.#componentIdx}] exclusive lock held by task [${this.#lockHolderTaskID}], requested by [${taskID}]`);
        }
        this.#lockHolderTaskID = taskID;
      }
      
      // Awaitable acquisition: takes the lock immediately when free,
      // otherwise queues FIFO behind the current holder and earlier
      // waiters. The resolved promise implies ownership.
      acquireExclusiveLock(taskID) {
        if (taskID === undefined || taskID === null) {
          throw new Error('exclusive lock requires the acquiring task id');
        }
        if (this.#lockHolderTaskID === null) {
          this.#lockHolderTaskID = taskID;
          _debugLog('[ComponentAsyncState#acquireExclusiveLock()] acquired', {
            holder: taskID,
            componentIdx: this.#componentIdx,
          });
          return;
        }
        if (this.#lockHolderTaskID === taskID) {
          throw new Error(`task [${taskID}] already holds the lock for component [${this.#componentIdx}]`);
        }
        _debugLog('[ComponentAsyncState#acquireExclusiveLock()] waiting', {
          holder: this.#lockHolderTaskID,
          requester: taskID,
          componentIdx: this.#componentIdx,
          queued: this.#lockWaiters.length,
        });
        return new Promise((resolve) => {
          this.#lockWaiters.push({ taskID, resolve });
        });
      }
      
      exclusiveRelease(taskID) {
        _debugLog('[ComponentAsyncState#exclusiveRelease()] args', {
          holder: this.#lockHolderTaskID,
          releaser: taskID,
          componentIdx: this.#componentIdx,
        });
        if (this.#lockHolderTaskID !== taskID) {
          // Ownerless releases were the historical behavior; a foreign
          // release now leaves the hold intact
          _debugLog('[ComponentAsyncState#exclusiveRelease()] ignoring foreign release', {
            holder: this.#lockHolderTaskID,
            releaser: taskID,
            componentIdx: this.#componentIdx,
          });
          return false;
        }
        
        // Make the release observable before handing the lock to the next
        // asynchronous guest slice.
        //
        // Release handlers may expose a lifted value whose consumer immediately
        // performs a synchronous call on the same component; that call must run
        // while the instance is genuinely unlocked, not via enterSync's
        // lock-free fallback code.
        this.#lockHolderTaskID = null;
        
        this.#onExclusiveReleaseHandlers = this.#onExclusiveReleaseHandlers.filter(v => !!v);
        for (const [idx, f] of this.#onExclusiveReleaseHandlers.entries()) {
          try {
            this.#onExclusiveReleaseHandlers[idx] = null;
            f();
          } catch (err) {
            _debugLog("error while executing handler for next exclusive release", err);
            throw err;
          }
        }
        this.#scheduleLockHandoff();
        return true;
      }
      
      #scheduleLockHandoff() {
        if (this.#lockHandoffScheduled || this.#lockWaiters.length === 0) { return; }
        this.#lockHandoffScheduled = true;
        queueMicrotask(() => {
          this.#lockHandoffScheduled = false;
          // A synchronous call triggered by a release handler gets the
          // first opportunity to use the unlocked component.
          //
          // Its release will leave this queued handoff in place.
          if (this.#lockHolderTaskID !== null) {
            this.#scheduleLockHandoff();
            return;
          }
          const next = this.#lockWaiters.shift();
          if (!next) { return; }
          this.#lockHolderTaskID = next.taskID;
          next.resolve();
        });
      }
      
      onNextExclusiveRelease(fn) {
        _debugLog('[ComponentAsyncState#()onNextExclusiveRelease] registering');
        this.#onExclusiveReleaseHandlers.push(fn);
      }
      
      async waitForExclusiveRelease() {
        while (this.isExclusivelyLocked()) {
          await new Promise(resolve => this.onNextExclusiveRelease(resolve));
        }
      }
      
      #getSuspendedTaskMeta(taskID) {
        return this.#suspendedTasksByTaskID.get(taskID);
      }
      
      #removeSuspendedTaskMeta(taskID) {
        _debugLog('[ComponentAsyncState#removeSuspendedTaskMeta()] removing suspended task', {
          taskID,
          componentIdx: this.#componentIdx,
        });
        const idx = this.#suspendedTaskIDs.findIndex(t => t === taskID);
        const meta = this.#suspendedTasksByTaskID.get(taskID);
        this.#suspendedTaskIDs[idx] = null;
        this.#suspendedTasksByTaskID.delete(taskID);
        return meta;
      }
      
      #addSuspendedTaskMeta(meta) {
        if (!meta) { throw new Error('missing task meta'); }
        const taskID = meta.taskID;
        this.#suspendedTasksByTaskID.set(taskID, meta);
        this.#suspendedTaskIDs.push(taskID);
        if (this.#suspendedTasksByTaskID.size < this.#suspendedTaskIDs.length - 10) {
          this.#suspendedTaskIDs = this.#suspendedTaskIDs.filter(t => t !== null);
        }
      }
      
      // TODO(threads): readyFn is normally on the thread
      suspendTask(args) {
        const { task, readyFn, cancellable, onResume } = args;
        const taskID = task.id();
        const componentIdx = task.componentIdx();
        _debugLog('[ComponentAsyncState#suspendTask()]', {
          taskID,
          componentIdx: this.#componentIdx,
          taskEntryFnName: task.entryFnName(),
          subtask: task.getParentSubtask(),
        });
        
        if (componentIdx !== this.#componentIdx) {
          throw new Error('assert: task component idx should match async state');
        }
        
        if (this.#getSuspendedTaskMeta(taskID)) {
          throw new Error(`task [${taskID}] already suspended`);
        }
        
        let promise;
        let resume;
        if (onResume) {
          resume = () => onResume(!task.isCancelled());
        } else {
          const resolvers = promiseWithResolvers();
          promise = resolvers.promise;
          resume = () => resolvers.resolve(!task.isCancelled());
        }
        this.#addSuspendedTaskMeta({
          task,
          taskID,
          cancellable,
          readyFn,
          resume: () => {
            _debugLog('[ComponentAsyncState] resuming suspended task', {
              taskID,
              componentIdx: this.#componentIdx,
            });
            // TODO(threads): it's thread cancellation we should be checking for below, not task
            resume();
          },
        });
        
        // A caller synchronously driving one task quantum (for
        // example, subtask.cancel) waits for the resumed task to
        // either resolve or suspend again.
        task.notifyProgress();
        
        this.runTickLoop();
        _checkForDeadlock();
        
        return promise;
      }
      
      resumeTaskByID(taskID) {
        const meta = this.#removeSuspendedTaskMeta(taskID);
        if (!meta) { return false; }
        if (meta.taskID !== taskID) { throw new Error('task ID does not match'); }
        meta.resume();
        return true;
      }
      
      suspendedTaskReady(taskID) {
        const meta = this.#getSuspendedTaskMeta(taskID);
        if (!meta) { return false; }
        if (!meta.readyFn) {
          throw new Error(`suspended task [${taskID}] is missing a readiness function`);
        }
        return meta.task.isRejected() || meta.readyFn();
      }
      
      suspendedTaskCancellable(taskID) {
        return !!this.#getSuspendedTaskMeta(taskID)?.cancellable;
      }
      
      isTaskSuspended(taskID) {
        return this.#suspendedTasksByTaskID.has(taskID);
      }
      
      suspendedTaskMetas() {
        return this.#suspendedTasksByTaskID.values();
      }
      
      addPendingTaskStart() { this.#pendingTaskStarts++; }
      removePendingTaskStart() { this.#pendingTaskStarts--; }
      
      hasPendingSchedulerWork() {
        if (this.#pendingTaskStarts > 0) { return true; }
        if (this.#lockHandoffScheduled) { return true; }
        for (const meta of this.#suspendedTasksByTaskID.values()) {
          if (meta.task.isRejected() || meta.readyFn()) { return true; }
        }
        return false;
      }
      
      async runTickLoop() {
        if (this.#tickLoop !== null) { return; }
        this.#tickLoop = 1;
        setTimeout(async () => {
          let result = this.tick();
          while (result !== ComponentAsyncState.TickResult.DONE) {
            if (result === ComponentAsyncState.TickResult.IDLE) {
              _checkForDeadlock();
            }
            // After resuming a task, re-tick as soon as the resumed
            // slice's microtask continuations have drained (timeout 0)
            // so queued sibling resumptions aren't charged the idle
            // polling interval; otherwise poll at the idle cadence.
            const delay = result === ComponentAsyncState.TickResult.RESUMED ? 0 : 10;
            await new Promise((resolve) => setTimeout(resolve, delay));
            result = this.tick();
          }
          this.#tickLoop = null;
        }, 10);
      }
      
      tick() {
        // _debugLog('[ComponentAsyncState#tick()]', { suspendedTaskIDs: this.#suspendedTaskIDs });
        
        const resumableTasks = this.#suspendedTaskIDs.filter(t => t !== null);
        for (const taskID of resumableTasks) {
          const meta = this.#suspendedTasksByTaskID.get(taskID);
          if (!meta || !meta.readyFn) {
            throw new Error(`missing/invalid task despite ID [${taskID}] being present`);
          }
          
          // If the task failed via any means, allow the task to resume because
          // it's been cancelled -- the callback should immediately exit as well
          if (meta.task.isRejected()) {
            _debugLog('[ComponentAsyncState#tick()] detected task rejection, leaving early', { meta });
            this.resumeTaskByID(taskID);
            return ComponentAsyncState.TickResult.RESUMED;
          }
          
          const isReady = meta.readyFn();
          if (!isReady) { continue; }
          
          _debugLog('[ComponentAsyncState#tick()] resuming task via tick', {
            taskID,
            componentIdx: this.#componentIdx,
          });
          this.resumeTaskByID(taskID);
          
          // NOTE: during single-flight resumption, we should resume at most one task per
          // tick so that the resumed slice (a microtask continuation)
          // runs -- and its current-task register window opens and
          // closes -- before any sibling task of this component is
          // resumed.
          //
          // Resuming multiple suspended tasks in one synchronous
          // cascade interleaves their register save/restore windows
          // ([restoreA, restoreB, resumeA, resumeB]), re-entering wasm
          // with the register naming the wrong task, and the
          // 'known residual' of the JSPI current-task register
          // fix); with concurrent task lifetimes per component this
          // corrupts guest context-local storage.
          return ComponentAsyncState.TickResult.RESUMED;
        }
        
        const idle = this.#suspendedTaskIDs.filter(t => t !== null).length > 0;
        return idle
        ? ComponentAsyncState.TickResult.IDLE
        : ComponentAsyncState.TickResult.DONE;
      }
      
      createWaitable(args) {
        return new Waitable({ target: args?.target, });
      }
    }
    
    function getOrCreateAsyncState(componentIdx, init) {
      if (!ASYNC_STATE.has(componentIdx)) {
        const newState = new ComponentAsyncState({ componentIdx });
        ASYNC_STATE.set(componentIdx, newState);
      }
      return ASYNC_STATE.get(componentIdx);
    }
    const GLOBAL_COMPONENT_MEMORY_MAP = new Map();
    
    function lookupMemoriesForComponent(args) {
      const { componentIdx } = args ?? {};
      if (args.componentIdx === undefined) { throw new TypeError("missing component idx"); }
      
      const metas = GLOBAL_COMPONENT_MEMORY_MAP.get(componentIdx);
      if (!metas) { return []; }
      
      if (args.memoryIdx === undefined) {
        return Object.values(metas);
      }
      
      const meta = metas[args.memoryIdx];
      return meta?.memory;
    }
    
    class AsyncSubtask {
      static _ID = 0n;
      
      static State = {
        STARTING: 0,
        STARTED: 1,
        RETURNED: 2,
        CANCELLED_BEFORE_STARTED: 3,
        CANCELLED_BEFORE_RETURNED: 4,
      };
      
      #id;
      #state = AsyncSubtask.State.STARTING;
      #componentIdx;
      
      #parentTask;
      #childTask = null;
      
      #dropped = false;
      #cancelRequested = false;
      
      #memoryIdx = null;
      #lenders = null;
      
      #waitable = null;
      
      #callbackFn = null;
      #callbackFnName = null;
      
      #postReturnFn = null;
      #onProgressFn = null;
      #pendingEventFn = null;
      
      #callMetadata = {};
      
      #resolved = false;
      
      #onResolveHandlers = [];
      #onStartHandlers = [];
      
      #result = null;
      #resultSet = false;
      
      fnName;
      target;
      isAsync;
      isManualAsync;
      // One execution slice awaited by the conditional cancel trampoline.
      cancelProgress = null;
      
      constructor(args) {
        if (typeof args.componentIdx !== 'number') {
          throw new Error('invalid componentIdx for subtask creation');
        }
        this.#componentIdx = args.componentIdx;
        
        this.#id = ++AsyncSubtask._ID;
        this.fnName = args.fnName;
        
        if (!args.parentTask) { throw new Error('missing parent task during subtask creation'); }
        this.#parentTask = args.parentTask;
        
        if (args.childTask) { this.#childTask = args.childTask; }
        
        if (args.memoryIdx) { this.#memoryIdx = args.memoryIdx; }
        
        if (!args.waitable) { throw new Error("missing/invalid waitable"); }
        this.#waitable = args.waitable;
        
        if (args.callMetadata) { this.#callMetadata = args.callMetadata; }
        
        this.#lenders = [];
        this.target = args.target;
        this.isAsync = args.isAsync;
        this.isManualAsync = args.isManualAsync;
      }
      
      id() { return this.#id; }
      parentTaskID() { return this.#parentTask?.id(); }
      childTaskID() { return this.#childTask?.id(); }
      state() { return this.#state; }
      
      waitable() { return this.#waitable; }
      waitableRep() { return this.#waitable.idx(); }
      
      join() { return this.#waitable.join(...arguments); }
      getPendingEvent() { return this.#waitable.getPendingEvent(...arguments); }
      hasPendingEvent() { return this.#waitable.hasPendingEvent(...arguments); }
      setPendingEvent() { return this.#waitable.setPendingEvent(...arguments); }
      
      setTarget(tgt) { this.target = tgt; }
      
      getResult() {
        if (!this.#resultSet) { throw new Error("subtask result has not been set") }
        return this.#result;
      }
      setResult(v) {
        if (this.#resultSet) { throw new Error("subtask result has already been set"); }
        this.#result = v;
        this.#resultSet = true;
      }
      
      componentIdx() { return this.#componentIdx; }
      
      setChildTask(t) {
        if (!t) { throw new Error('cannot set missing/invalid child task on subtask'); }
        if (this.#childTask) { throw new Error('child task is already set on subtask'); }
        if (this.#parentTask === t) { throw new Error("parent cannot be child"); }
        this.#childTask = t;
      }
      getChildTask(t) { return this.#childTask; }
      
      getParentTask() { return this.#parentTask; }
      
      setCallbackFn(f, name) {
        if (!f) { return; }
        if (this.#callbackFn) { throw new Error('callback fn can only be set once'); }
        this.#callbackFn = f;
        this.#callbackFnName = name;
      }
      
      getCallbackFnName() {
        if (!this.#callbackFn) { return undefined; }
        return this.#callbackFn.name;
      }
      
      setPostReturnFn(f) {
        if (!f) { return; }
        if (this.#postReturnFn) { throw new Error('postReturn fn can only be set once'); }
        this.#postReturnFn = f;
      }
      
      setOnProgressFn(f) {
        if (this.#onProgressFn) { throw new Error('on progress fn can only be set once'); }
        this.#onProgressFn = f;
      }
      
      isNotStarted() {
        return this.#state == AsyncSubtask.State.STARTING;
      }
      
      cancellationRequested() { return this.#cancelRequested; }
      
      // Request cooperative cancellation of this subtask, on behalf of the
      // supertask (i.e. `canon subtask.cancel`).
      //
      // If the callee is another guest task, the request is delivered to it and
      // the callee confirms via `task.cancel` (or still resolves via `task.return`).
      //
      // If the callee is a host function there is (currently) no host-side
      // cancellation hook, so the pending call is treated as immediately
      // cancelled -- consistent with hosts being expected to resolve
      // cancellation promptly -- and any later host resolution is discarded
      // (see `AsyncTask#onResolve`).
      requestCancellation() {
        _debugLog('[AsyncSubtask#requestCancellation()] args', {
          componentIdx: this.#componentIdx,
          subtaskID: this.#id,
          state: this.#state,
          childTaskID: this.childTaskID(),
          fnName: this.fnName,
        });
        if (this.#cancelRequested) {
          throw new Error('cancellation has already been requested for this subtask');
        }
        this.#cancelRequested = true;
        
        if (this.#resolved) { return; }
        
        if (this.#childTask) {
          this.#childTask.requestCancellation();
          return;
        }
        
        this.onResolve(null);
      }
      
      registerOnStartHandler(f) {
        this.#onStartHandlers.push(f);
      }
      
      onStart(args) {
        _debugLog('[AsyncSubtask#onStart()] args', {
          componentIdx: this.#componentIdx,
          subtaskID: this.#id,
          parentTaskID: this.parentTaskID(),
          fnName: this.fnName,
          args,
        });
        
        if (this.#onProgressFn) { this.#onProgressFn(); }
        
        // Starting a nested operation is a task execution boundary.
        // In particular, a cancellation handler may synchronously
        // enter an import which then suspends in the host.  Wake a
        // supertask that is driving one cancellation slice so an
        // async `subtask.cancel` can report BLOCKED without waiting
        // for that nested operation to finish.
        this.#parentTask.notifyProgress();
        
        this.#state = AsyncSubtask.State.STARTED;
        
        let result;
        
        // If we have been provided a helper start function as a result of
        // component fusion performed by wasmtime tooling, then we can call that helper and lifts/lowers will
        // be performed for us.
        //
        // See also documentation on `HostIntrinsic::PrepareCall`
        //
        if (this.#callMetadata.startFn) {
          result = this.#callMetadata.startFn.apply(null, args?.startFnParams ?? []);
        }
        
        return result;
      }
      
      
      registerOnResolveHandler(f) {
        this.#onResolveHandlers.push(f);
      }
      
      reject(subtaskErr) {
        if (this.#resolved) { return; }
        
        if (this.#onProgressFn) { this.#onProgressFn(); }
        
        if (this.#state === AsyncSubtask.State.STARTING) {
          this.#state = AsyncSubtask.State.CANCELLED_BEFORE_STARTED;
        } else if (this.#state === AsyncSubtask.State.STARTED) {
          this.#state = AsyncSubtask.State.CANCELLED_BEFORE_RETURNED;
        } else {
          throw new Error('cannot reject a completed subtask');
        }
        
        this.#resolved = true;
        this.#parentTask.removeSubtask(this);
        this.#parentTask.reject(subtaskErr);
      }
      
      onResolve(subtaskValue) {
        _debugLog('[AsyncSubtask#onResolve()] args', {
          componentIdx: this.#componentIdx,
          subtaskID: this.#id,
          isAsync: this.isAsync,
          childTaskID: this.childTaskID(),
          parentTaskID: this.parentTaskID(),
          parentTaskFnName: this.#parentTask?.entryFnName(),
          fnName: this.fnName,
        });
        
        if (this.#resolved) {
          throw new Error('subtask has already been resolved');
        }
        
        if (this.#onProgressFn) { this.#onProgressFn(); }
        
        if (subtaskValue === null && this.#cancelRequested) {
          if (this.#state === AsyncSubtask.State.STARTING) {
            this.#state = AsyncSubtask.State.CANCELLED_BEFORE_STARTED;
          } else {
            if (this.#state !== AsyncSubtask.State.STARTED) {
              throw new Error('resolved subtask must have been started before cancellation');
            }
            this.#state = AsyncSubtask.State.CANCELLED_BEFORE_RETURNED;
          }
        } else {
          if (this.#state !== AsyncSubtask.State.STARTED) {
            throw new Error('resolved subtask must have been started before completion');
          }
          this.#state = AsyncSubtask.State.RETURNED;
        }
        
        this.setResult(subtaskValue);
        
        for (const f of this.#onResolveHandlers) {
          try {
            f(subtaskValue);
          } catch (err) {
            console.error("error during subtask resolve handler", err);
            throw err;
          }
        }
        
        const callMetadata = this.getCallMetadata();
        
        // TODO(fix): we should be able to easily have the caller's meomry
        // to lower into here, but it's not present in PrepareCall
        const memory = callMetadata.memory ?? this.#parentTask?.getReturnMemory() ?? lookupMemoriesForComponent({ componentIdx: this.#parentTask?.componentIdx() })[0];
        // NOTE: cancelled resolutions carry no value, so nothing is lowered
        const returned = this.#state === AsyncSubtask.State.RETURNED;
        if (returned && callMetadata && !callMetadata.returnFn && (this.isAsync || callMetadata.funcTypeIsAsync) && callMetadata.resultPtr && memory) {
          const { resultPtr, realloc } = callMetadata;
          const lowers = callMetadata.lowers; // may have been updated in task.return of the child
          if (lowers && lowers.length > 0) {
            lowers[0]({
              componentIdx: this.#componentIdx,
              memory,
              realloc,
              vals: [subtaskValue],
              storagePtr: resultPtr,
              stringEncoding: callMetadata.stringEncoding,
            });
          }
        }
        
        this.#resolved = true;
        this.#parentTask.removeSubtask(this);
        
        if (!this.isAsync) {
          this.deliverResolve();
          const rep = this.waitableRep();
          if (rep) {
            try {
              const removed = this.#getComponentState().handles.remove(rep);
              if (removed !== this) {
                throw new Error("unexpectedly received non-self Subtask from handle removal");
              }
              this.drop();
            } catch (err) {
              _debugLog('[AsyncSubtask#onResolve()] failed to remove subtask after sync subtask completion', err);
            }
          }
        }
      }
      
      getStateNumber() { return this.#state; }
      isReturned() { return this.#state === AsyncSubtask.State.RETURNED; }
      
      getCallMetadata() { return this.#callMetadata; }
      
      isResolved() {
        if (this.#state === AsyncSubtask.State.STARTING
        || this.#state === AsyncSubtask.State.STARTED) {
          return false;
        }
        if (this.#state === AsyncSubtask.State.RETURNED
        || this.#state === AsyncSubtask.State.CANCELLED_BEFORE_STARTED
        || this.#state === AsyncSubtask.State.CANCELLED_BEFORE_RETURNED) {
          return true;
        }
        throw new Error('unrecognized internal Subtask state [' + this.#state + ']');
      }
      
      addLender(handle) {
        _debugLog('[AsyncSubtask#addLender()] args', { handle });
        if (!Number.isNumber(handle)) { throw new Error('missing/invalid lender handle [' + handle + ']'); }
        
        if (this.#lenders.length === 0 || this.isResolved()) {
          throw new Error('subtask has no lendors or has already been resolved');
        }
        
        handle.lends++;
        this.#lenders.push(handle);
      }
      
      deliverResolve() {
        _debugLog('[AsyncSubtask#deliverResolve()] args', {
          lenders: this.#lenders,
          parentTaskID: this.parentTaskID(),
          subtaskID: this.#id,
          childTaskID: this.childTaskID(),
          resolved: this.isResolved(),
          resolveDelivered: this.resolveDelivered(),
        });
        
        const cannotDeliverResolve = this.resolveDelivered() || !this.isResolved();
        if (cannotDeliverResolve) {
          throw new Error('subtask cannot deliver resolution twice, and the subtask must be resolved');
        }
        
        for (const lender of this.#lenders) {
          lender.lends--;
        }
        
        this.#lenders = null;
      }
      
      resolveDelivered() {
        _debugLog('[AsyncSubtask#resolveDelivered()] args', { });
        if (this.#lenders === null && !this.isResolved()) {
          throw new Error('invalid subtask state, lenders missing and subtask has not been resolved');
        }
        return this.#lenders === null;
      }
      
      drop() {
        _debugLog('[AsyncSubtask#drop()] args', {
          componentIdx: this.#componentIdx,
          parentTaskID: this.#parentTask?.id(),
          parentTaskFnName: this.#parentTask?.entryFnName(),
          childTaskID: this.#childTask?.id(),
          childTaskFnName: this.#childTask?.entryFnName(),
          subtaskFnName: this.fnName,
        });
        if (!this.#waitable) { throw new Error('missing/invalid inner waitable'); }
        if (!this.resolveDelivered()) {
          throw new Error('cannot drop a subtask which has not yet resolved');
        }
        if (this.#waitable) { this.#waitable.drop() }
        this.#dropped = true;
      }
      
      #getComponentState() {
        const state = getOrCreateAsyncState(this.#componentIdx);
        if (!state) {
          throw new Error('invalid/missing async state for component [' + componentIdx + ']');
        }
        return state;
      }
      
      getWaitableHandleIdx() {
        _debugLog('[AsyncSubtask#getWaitableHandleIdx()] args', { });
        if (!this.#waitable) { throw new Error('missing/invalid waitable'); }
        return this.waitableRep();
      }
    }
    
    class FutureValue {
      #start;
      #settled;
      #hideThen = 0;
      #thenFn;
      
      constructor(start) {
        if (typeof start !== 'function') {
          throw new TypeError('future start operation must be a function');
        }
        this.#start = start;
        this.#thenFn = this.#then.bind(this);
      }
      
      get then() {
        return this.#hideThen === 0 ? this.#thenFn : undefined;
      }
      
      #read() {
        if (!this.#settled) {
          // The start operation resolves to a non-thenable box so a
          // future-valued payload cannot be assimilated by this Promise.
          this.#settled = Promise.resolve().then(this.#start);
        }
        return this.#settled;
      }
      
      resolveAsValue(resolve) {
        this.#hideThen++;
        try {
          resolve(this);
        } finally {
          this.#hideThen--;
        }
      }
      
      #deliver(resolve, value) {
        if (value instanceof FutureValue) {
          // Promise resolution reads `then` synchronously. Hide it only
          // for that lookup so resolving this layer yields the inner
          // FutureValue instead of recursively awaiting it.
          value.resolveAsValue(resolve);
          return;
        }
        resolve(value);
      }
      
      #then(resolve, reject) {
        return this.#read().then(
        box => this.#deliver(resolve, box.value),
        reject,
        );
      }
    }
    const ASYNC_DETERMINISM = 'random';
    const _coinFlip = () => { return Math.random() > 0.5; };
    
    const ASYNC_EVENT_CODE = {
      NONE: 0,
      SUBTASK: 1,
      STREAM_READ: 2,
      STREAM_WRITE: 3,
      FUTURE_READ: 4,
      FUTURE_WRITE: 5,
      TASK_CANCELLED: 6,
    };
    const CURRENT_TASK_META = {};
    
    function _withGlobalCurrentTaskMeta(args) {
      _debugLog('[_withGlobalCurrentTaskMeta()] args', args);
      if (!args) { throw new TypeError('args missing'); }
      if (args.taskID === undefined) { throw new TypeError('missing task ID'); }
      if (args.componentIdx === undefined) { throw new TypeError('missing component idx'); }
      if (!args.fn) { throw new TypeError('missing fn'); }
      const { taskID, componentIdx, fn } = args;
      const previous = CURRENT_TASK_META[componentIdx] ?? null;
      const previousCurrent = CURRENT_TASK_META.current ?? null;
      
      try {
        CURRENT_TASK_META.current =
        CURRENT_TASK_META[componentIdx] = { taskID, componentIdx };
        return fn();
      } catch (err) {
        _debugLog("error while executing sync callee/callback", {
          ...args,
          err,
        });
        throw err;
      } finally {
        // Synchronous wrappers can nest without any intervening JS
        // scheduling. Restore the caller rather than clearing it so
        // helper core exports (for example fused return adapters) can
        // temporarily run under a different task of the same component.
        CURRENT_TASK_META[componentIdx] = previous;
        CURRENT_TASK_META.current = previousCurrent;
      }
    }
    
    async function _withGlobalCurrentTaskMetaAsync(args) {
      _debugLog('[_withGlobalCurrentTaskMetaAsync()] args', args);
      if (!args) { throw new TypeError('args missing'); }
      if (args.taskID === undefined) { throw new TypeError('missing task ID'); }
      if (args.componentIdx === undefined) { throw new TypeError('missing component idx'); }
      if (!args.fn) { throw new TypeError('missing fn'); }
      
      const { taskID, componentIdx, fn } = args;
      
      try {
        CURRENT_TASK_META.current =
        CURRENT_TASK_META[componentIdx] = { taskID, componentIdx };
        return await fn();
      } catch (err) {
        _debugLog("error while executing async callee/callback", {
          ...args,
          err,
        });
        throw err;
      } finally {
        CURRENT_TASK_META[componentIdx] = null;
        if (CURRENT_TASK_META.current?.taskID === taskID) {
          CURRENT_TASK_META.current = null;
        }
      }
    }
    
    class AsyncTask {
      static _ID = 0n;
      
      static State = {
        INITIAL: 'initial',
        CANCELLED: 'cancelled',
        CANCEL_PENDING: 'cancel-pending',
        CANCEL_DELIVERED: 'cancel-delivered',
        RESOLVED: 'resolved',
      }
      
      static BlockResult = {
        CANCELLED: 'block.cancelled',
        NOT_CANCELLED: 'block.not-cancelled',
      }
      
      #id;
      #componentIdx;
      #state;
      #isAsync;
      #isManualAsync;
      #callingWasmExport = true;
      #lockFreeEntry = false;
      #preserveFutureResult;
      #entryFnName = null;
      
      #onResolveHandlers = [];
      #progressWaiters = [];
      #completionPromise = null;
      #completionValue;
      #completionReady = false;
      #settleCompletionPromise;
      #rejected = false;
      
      #exitPromise = null;
      #onExitHandlers = [];
      
      #memoryIdx = null;
      #memory = null;
      
      #callbackFn = null;
      #callbackFnName = null;
      
      #postReturnFn = null;
      
      #getCalleeParamsFn = null;
      #calleeIsAsync = null;
      
      #stringEncoding = null;
      
      #parentSubtask = null;
      
      #errHandling;
      
      #backpressurePromise;
      #backpressureWaiters = 0n;
      
      #returnLowerFns = null;
      
      #resourceScopeId;
      #resourceBorrowCount = 0;
      #resourceLenders = [];
      #resourceScopeExited = false;
      
      #subtasks = [];
      
      #entered = false;
      #exited = false;
      #errored = null;
      
      cancelled = false;
      cancelRequested = false;
      alwaysTaskReturn = false;
      
      returnCalls =  0;
      storage = [0, 0];
      tmpRetI64HighBits = 0|0;
      
      constructor(opts) {
        this.#id = ++AsyncTask._ID;
        this.#resourceScopeId = ++RESOURCE_SCOPE_ID;
        RESOURCE_SCOPE_TASKS.set(this.#resourceScopeId, this);
        
        if (opts?.componentIdx === undefined) {
          throw new TypeError('missing component id during task creation');
        }
        this.#componentIdx = opts.componentIdx;
        
        this.#state = AsyncTask.State.INITIAL;
        this.#isAsync = opts?.isAsync ?? false;
        this.#isManualAsync = opts?.isManualAsync ?? false;
        this.#preserveFutureResult = opts?.preserveFutureResult ?? false;
        this.#entryFnName = opts.entryFnName;
        // Tasks that execute guest slices (export calls, fused
        // callees) default to true; import-handler tasks pass false
        // explicitly (they run host code nested inside the caller's
        // already-locked slice).
        this.#callingWasmExport = opts?.callingWasmExport !== false;
        
        const {
          promise: completionPromise,
          resolve: resolveCompletionPromise,
          reject: rejectCompletionPromise,
        } = promiseWithResolvers();
        this.#completionPromise = completionPromise;
        // A nested rejection can reach the root task while its Wasm
        // entrypoint is still suspended, before the export wrapper awaits
        // this promise. Mark it handled immediately while preserving the
        // original rejected promise for the eventual caller.
        completionPromise.catch(() => {});
        
        let completionSettled = false;
        const settleCompletionPromise = () => {
          if (completionSettled || !this.#completionReady) { return; }
          completionSettled = true;
          if (this.#errored !== null) {
            rejectCompletionPromise(this.#errored);
          } else if (this.#rejected) {
            rejectCompletionPromise(this.#completionValue);
          } else if (
          this.#preserveFutureResult
          && this.#completionValue instanceof FutureValue
          ) {
            this.#completionValue.resolveAsValue(resolveCompletionPromise);
          } else {
            resolveCompletionPromise(this.#completionValue);
          }
        };
        
        this.#settleCompletionPromise = settleCompletionPromise;
        this.#onResolveHandlers.push((results) => {
          if (this.#parentSubtask !== null) { return; }
          if (!this.#isAsync && !this.#isManualAsync) { return; }
          this.#completionValue = results;
          this.#completionReady = true;
          // Publish after the current guest slice returns, so a trap
          // in that slice can still reject the call. Do not wait for
          // task exit: detached work may require further host calls
          // or consumption of a returned resource's stream.
        });
        
        const {
          promise: exitPromise,
          resolve: resolveExitPromise,
          reject: rejectExitPromise,
        } = promiseWithResolvers();
        this.#exitPromise = exitPromise;
        
        this.#onExitHandlers.push(() => {
          if (this.#parentSubtask === null && (this.#isAsync || this.#isManualAsync)) {
            settleCompletionPromise();
          }
          resolveExitPromise();
        });
        
        if (opts.callbackFn) { this.#callbackFn = opts.callbackFn; }
        if (opts.callbackFnName) { this.#callbackFnName = opts.callbackFnName; }
        
        if (opts.getCalleeParamsFn) { this.#getCalleeParamsFn = opts.getCalleeParamsFn; }
        if (opts.stringEncoding) { this.#stringEncoding = opts.stringEncoding; }
        
        if (opts.parentSubtask) { this.#parentSubtask = opts.parentSubtask; }
        
        
        if (opts.errHandling) { this.#errHandling = opts.errHandling; }
      }
      
      taskState() { return this.#state; }
      id() { return this.#id; }
      componentIdx() { return this.#componentIdx; }
      entryFnName() { return this.#entryFnName; }
      
      resourceScopeId() { return this.#resourceScopeId; }
      
      addBorrowedHandle() {
        if (this.#resourceScopeExited) {
          throw new Error('cannot add a borrow to an exited resource scope');
        }
        this.#resourceBorrowCount++;
      }
      
      removeBorrowedHandle() {
        if (this.#resourceBorrowCount === 0) {
          throw new Error('resource borrow count underflow');
        }
        this.#resourceBorrowCount--;
      }
      
      addResourceLender(table, handle) {
        if (this.#resourceScopeExited) {
          throw new Error('cannot add a lender to an exited resource scope');
        }
        this.#resourceLenders.push({ table, handle });
      }
      
      validateResourceBorrowScope() {
        if (this.#resourceScopeExited) { return; }
        if (this.#resourceBorrowCount !== 0) {
          throw new WebAssemblyRuntimeError('borrow handles still remain at the end of the call');
        }
        for (const { table, handle } of this.#resourceLenders) {
          const idx = handle << 1;
          const lendCount = table[idx];
          if (!Number.isInteger(lendCount) || lendCount <= 0 || lendCount >= 2**30) {
            throw new Error('invalid resource lender state at scope exit');
          }
          table[idx] = lendCount - 1;
        }
        this.#resourceLenders = [];
        this.#resourceScopeExited = true;
        RESOURCE_SCOPE_TASKS.delete(this.#resourceScopeId);
      }
      
      completionPromise() { return this.#completionPromise; }
      settleCompletion() { this.#settleCompletionPromise(); }
      exitPromise() { return this.#exitPromise; }
      
      waitForProgress() {
        const { promise, resolve } = promiseWithResolvers();
        this.#progressWaiters.push(resolve);
        return promise;
      }
      
      notifyProgress() {
        const waiters = this.#progressWaiters;
        this.#progressWaiters = [];
        for (const resolve of waiters) { resolve(); }
      }
      
      isAsync() { return this.#isAsync; }
      isManualAsync() { return this.#isManualAsync; }
      isSync() { return !this.isAsync(); }
      
      getErrHandling() { return this.#errHandling; }
      
      hasCallback() { return this.#callbackFn !== null; }
      
      getReturnMemoryIdx() { return this.#memoryIdx; }
      setReturnMemoryIdx(idx) {
        if (idx === null) { return; }
        this.#memoryIdx = idx;
      }
      
      getReturnMemory() { return this.#memory; }
      setReturnMemory(m) {
        if (m === null) { return; }
        this.#memory = m;
      }
      
      setReturnLowerFns(fns) { this.#returnLowerFns = fns; }
      getReturnLowerFns() { return this.#returnLowerFns; }
      
      setCalleeIsAsync(value) {
        if (typeof value !== 'boolean') { throw new TypeError('callee async state must be a boolean'); }
        this.#calleeIsAsync = value;
      }
      
      setParentSubtask(subtask) {
        if (!subtask || !(subtask instanceof AsyncSubtask)) { return }
        if (this.#parentSubtask) { throw new Error('parent subtask can only be set once'); }
        this.#parentSubtask = subtask;
      }
      
      getParentSubtask() { return this.#parentSubtask; }
      
      // TODO(threads): this is very inefficient, we can pass along a root task,
      // and ideally do not need this once thread support is in place
      getRootTask() {
        let currentSubtask = this.getParentSubtask();
        let task = this;
        while (currentSubtask) {
          task = currentSubtask.getParentTask();
          currentSubtask = task.getParentSubtask();
        }
        return task;
      }
      
      setPostReturnFn(f) {
        if (!f) { return; }
        if (this.#postReturnFn) { throw new Error('postReturn fn can only be set once'); }
        this.#postReturnFn = f;
      }
      
      setCallbackFn(f, name) {
        if (!f) { return; }
        if (this.#callbackFn) { throw new Error('callback fn can only be set once'); }
        this.#callbackFn = f;
        this.#callbackFnName = name;
      }
      
      getCallbackFnName() {
        if (!this.#callbackFnName) { return undefined; }
        return this.#callbackFnName;
      }
      
      runCallbackFn(...args) {
        if (!this.#callbackFn) { throw new Error('no callback function has been set for task'); }
        if (this.#callbackFn._jcoMaySuspend === false) {
          return _withGlobalCurrentTaskMeta({
            taskID: this.#id,
            componentIdx: this.#componentIdx,
            fn: () => this.#callbackFn.apply(null, args),
          });
        }
        return _withGlobalCurrentTaskMetaAsync({
          taskID: this.#id,
          componentIdx: this.#componentIdx,
          fn: () => { return this.#callbackFn.apply(null, args); }
        });
      }
      
      getCalleeParams() {
        if (!this.#getCalleeParamsFn) { throw new Error('missing/invalid getCalleeParamsFn'); }
        return this.#getCalleeParamsFn();
      }
      
      // Legacy manually-async exports are sync-typed in the component
      // but use JSPI precisely so their guest stack may suspend.
      mayBlock() { return this.isAsync() || this.isManualAsync() || this.isResolvedState() }
      
      mayEnter(task) {
        const cstate = getOrCreateAsyncState(this.#componentIdx);
        if (cstate.hasBackpressure()) {
          _debugLog('[AsyncTask#mayEnter()] disallowed due to backpressure', { taskID: this.#id });
          return false;
        }
        if (!cstate.callingSyncImport()) {
          _debugLog('[AsyncTask#mayEnter()] disallowed due to sync import call', { taskID: this.#id });
          return false;
        }
        const callingSyncExportWithSyncPending = cstate.callingSyncExport && !task.isAsync;
        if (!callingSyncExportWithSyncPending) {
          _debugLog('[AsyncTask#mayEnter()] disallowed due to sync export w/ sync pending', { taskID: this.#id });
          return false;
        }
        return true;
      }
      
      enterSync() {
        if (this.needsExclusiveLock()) {
          const cstate = getOrCreateAsyncState(this.#componentIdx);
          if (!cstate.isExclusivelyLocked()) {
            cstate.exclusiveLock(this.#id);
          } else {
            // A host-called sync export arriving while another
            // task's slice holds the lock: synchronous entry
            // cannot wait, and historically this entry silently
            // stole the hold. Run without the lock instead --
            // the holder's bookkeeping stays intact and its
            // release still pairs
            this.#lockFreeEntry = true;
            _debugLog('[AsyncTask#enterSync()] entering without exclusive lock', {
              taskID: this.#id,
              componentIdx: this.#componentIdx,
            });
          }
        }
        return true;
      }
      
      tryEnter() {
        if (this.#entered) {
          throw new Error(`task with ID [${this.#id}] should not be entered twice`);
        }
        
        if (this.deliverPendingCancel({ cancellable: true })) {
          this.cancel();
          return false;
        }
        
        const cstate = getOrCreateAsyncState(this.#componentIdx);
        if (this.isSync()) {
          this.#entered = true;
          return true;
        }
        if (cstate.hasBackpressure()) { return null; }
        if (this.needsExclusiveLock()) {
          if (cstate.isExclusivelyLocked()) { return null; }
          cstate.exclusiveLock(this.#id);
        }
        
        if (this.deliverPendingCancel({ cancellable: true })) {
          cstate.exclusiveRelease(this.#id);
          this.cancel();
          return false;
        }
        
        this.#entered = true;
        return true;
      }
      
      async enter(opts) {
        _debugLog('[AsyncTask#enter()] args', {
          taskID: this.#id,
          componentIdx: this.#componentIdx,
          subtaskID: this.getParentSubtask()?.id(),
          args: opts,
          entryFnName: this.#entryFnName,
        });
        
        if (this.#entered) {
          throw new Error(`task with ID [${this.#id}] should not be entered twice`);
        }
        
        // If cancellation was requested before the task was entered, resolve
        // as cancelled without ever running guest code
        if (this.deliverPendingCancel({ cancellable: true })) {
          this.cancel();
          return false;
        }
        
        const cstate = getOrCreateAsyncState(this.#componentIdx);
        
        if (opts?.isHost) {
          this.#entered = true;
          // A guest task may be synchronously blocked in this
          // host entry. Propagate that boundary so an async
          // cancellation driver can yield BLOCKED while the host
          // operation is outstanding.
          const parentTask = this.#parentSubtask?.getParentTask();
          if (
          parentTask?.taskState() === AsyncTask.State.CANCEL_DELIVERED
          || (parentTask && !parentTask.hasCallback())
          ) {
            parentTask.notifyProgress();
          }
          return this.#entered;
        }
        
        // NOTE: concurrent task lifetimes within one component instance are
        // permitted by the Component Model: entry is governed by the
        // backpressure and exclusive-lock checks below (the lock is held per
        // execution slice, not for the task's lifetime).
        //
        // Serializing entire task lifetimes here (the former "execution slot" queue)
        // deadlocks pipelines where a parked long-lived task's progress depends on a
        // later entry into the same component.
        
        // If a task is synchronous then we can avoid component-relevant
        // tracking and immediately enter.
        if (this.isSync()) {
          this.#entered = true;
          
          // TODO(breaking): remove once manually-specifying async fns is removed
          // It is currently possible for an actually sync export to be specified
          // as async via JSPI
          if (this.#isManualAsync) {
            if (this.needsExclusiveLock()) { await cstate.acquireExclusiveLock(this.#id); }
          }
          
          return this.#entered;
        }
        
        // Perform intial backpressure check
        if (cstate.hasBackpressure()) {
          cstate.addBackpressureWaiter();
          
          const result = await this.waitUntil({
            readyFn: () => {
              return !cstate.hasBackpressure();
            },
            cancellable: true,
          });
          
          cstate.removeBackpressureWaiter();
          
          if (!result || this.isCancelled()) {
            if (!this.isResolvedState()) { this.cancel(); }
            return false;
          }
        }
        
        // Acquire the per-slice exclusive lock (FIFO-queued when
        // contended); the first slice runs under this hold and the
        // driver loop releases/re-acquires it per slice thereafter.
        if (this.needsExclusiveLock()) {
          await cstate.acquireExclusiveLock(this.#id);
        }
        
        // Cancellation-before-start may resolve this task while its
        // queued lock acquisition is still pending. Acquiring the lock
        // does not make the already-resolved task runnable again.
        if (this.isResolvedState() || this.isCancelled()) {
          cstate.exclusiveRelease(this.#id);
          return false;
        }
        
        // Cancellation can be requested while entry is waiting for
        // backpressure or its exclusive lock. Do not execute the guest
        // after acquiring a lock for a task that should no longer start.
        if (this.deliverPendingCancel({ cancellable: true })) {
          cstate.exclusiveRelease(this.#id);
          this.cancel();
          return false;
        }
        
        this.#entered = true;
        return this.#entered;
      }
      
      isRunningState() { return this.#state !== AsyncTask.State.RESOLVED; }
      isResolvedState() { return this.#state === AsyncTask.State.RESOLVED; }
      isResolved() { return this.#state === AsyncTask.State.RESOLVED; }
      isExited() { return this.#exited; }
      
      async waitUntil(opts) {
        const { readyFn, cancellable } = opts;
        _debugLog('[AsyncTask#waitUntil()] args', { taskID: this.#id, args: { cancellable } });
        
        // TODO(fix): check for cancel
        // TODO(fix): determinism
        // TODO(threads): add this thread to waiting list
        
        const keepGoing = await this.suspendUntil({
          readyFn,
          cancellable,
        });
        
        return keepGoing;
      }
      
      async yieldUntil(opts) {
        const { readyFn, cancellable } = opts;
        _debugLog('[AsyncTask#yieldUntil()]', {
          taskID: this.#id,
          args: {
            cancellable,
          },
          componentIdx: this.#componentIdx,
        });
        
        // A callback YIELD is an explicit request to let other work run.
        // Unlike waits whose condition is already ready, it must always
        // suspend for at least one scheduler turn.
        const keepGoing = await this.immediateSuspend({ readyFn, cancellable });
        if (keepGoing) {
          return {
            code: ASYNC_EVENT_CODE.NONE,
            payload0: 0,
            payload1: 0,
          };
        }
        
        return {
          code: ASYNC_EVENT_CODE.TASK_CANCELLED,
          payload0: 0,
          payload1: 0,
        };
      }
      
      async suspendUntil(opts) {
        const { cancellable, readyFn } = opts;
        _debugLog('[AsyncTask#suspendUntil()] args', {
          taskID: this.#id,
          args: {
            cancellable,
          },
          componentIdx: this.#componentIdx,
        });
        
        const pendingCancelled = this.deliverPendingCancel({ cancellable });
        if (pendingCancelled) { return false; }
        
        const completed = await this.immediateSuspendUntil({ readyFn, cancellable });
        return completed;
      }
      
      suspendUntilCallback(opts, onResume) {
        const { cancellable, readyFn } = opts;
        if (this.deliverPendingCancel({ cancellable })) {
          onResume(false);
          return;
        }
        
        const cstate = getOrCreateAsyncState(this.#componentIdx);
        cstate.suspendTask({
          task: this,
          cancellable,
          readyFn: () => {
            if (cancellable && this.#state === AsyncTask.State.CANCEL_PENDING) {
              return true;
            }
            return readyFn();
          },
          onResume: (keepGoing) => {
            if (keepGoing && this.deliverPendingCancel({ cancellable })) {
              keepGoing = false;
            }
            onResume(keepGoing);
          },
        });
      }
      
      // TODO(threads): equivalent to thread.suspend_until()
      async immediateSuspendUntil(opts) {
        const { cancellable, readyFn } = opts;
        _debugLog('[AsyncTask#immediateSuspendUntil()] args', {
          args: {
            cancellable,
            readyFn,
          },
          taskID: this.#id,
          componentIdx: this.#componentIdx,
        });
        
        const ready = readyFn();
        if (ready && ASYNC_DETERMINISM === 'random') {
          const coinFlip = _coinFlip();
          if (coinFlip) { return true }
        }
        
        const keepGoing = await this.immediateSuspend({ cancellable, readyFn });
        return keepGoing;
      }
      
      async immediateSuspend(opts) { // NOTE: equivalent to thread.suspend()
      // TODO(threads): store readyFn on the thread
      const { cancellable, readyFn } = opts;
      _debugLog('[AsyncTask#immediateSuspend()] args', { cancellable, readyFn });
      
      const pendingCancelled = this.deliverPendingCancel({ cancellable });
      if (pendingCancelled) { return false; }
      
      const cstate = getOrCreateAsyncState(this.#componentIdx);
      const keepGoing = await cstate.suspendTask({
        task: this,
        cancellable,
        readyFn: () => {
          // A pending cancellation request wakes cancellable waits
          if (cancellable && this.#state === AsyncTask.State.CANCEL_PENDING) {
            return true;
          }
          return readyFn();
        },
      });
      if (keepGoing && this.deliverPendingCancel({ cancellable })) { return false; }
      return keepGoing;
    }
    
    deliverPendingCancel(opts) {
      const { cancellable } = opts;
      _debugLog('[AsyncTask#deliverPendingCancel()]', {
        args: { cancellable },
        taskID: this.#id,
        componentIdx: this.#componentIdx,
      });
      
      if (cancellable && this.#state === AsyncTask.State.CANCEL_PENDING) {
        this.#state = AsyncTask.State.CANCEL_DELIVERED;
        return true;
      }
      
      return false;
    }
    
    isCancelled() { return this.cancelled }
    cancellationRequested() { return this.cancelRequested; }
    
    // Request cooperative cancellation of this task, called on behalf of a
    // supertask performing `subtask.cancel` on the subtask this task backs.
    //
    // The request is delivered at this task's next cancellable wait
    // (see suspendUntil/immediateSuspend), at which point the task is
    // expected to acknowledge via `task.cancel` or still resolve via
    // `task.return`.
    requestCancellation() {
      _debugLog('[AsyncTask#requestCancellation()] args', {
        taskID: this.#id,
        componentIdx: this.#componentIdx,
        state: this.#state,
      });
      if (this.isResolvedState() || this.cancelRequested) { return; }
      this.cancelRequested = true;
      if (this.#state === AsyncTask.State.INITIAL) {
        this.#state = AsyncTask.State.CANCEL_PENDING;
      }
      // Nudge the component's tick loop so that any suspended cancellable
      // wait observes the pending cancellation promptly
      getOrCreateAsyncState(this.#componentIdx).runTickLoop();
    }
    
    cancel(args) {
      _debugLog('[AsyncTask#cancel()] args', { });
      if (this.taskState() !== AsyncTask.State.CANCEL_DELIVERED) {
        throw new Error(`(component [${this.#componentIdx}]) task [${this.#id}] invalid task state [${this.taskState()}] for cancellation`);
      }
      this.validateResourceBorrowScope();
      this.cancelled = true;
      // Cancelled tasks resolve with no value (spec: `Task.cancel` calls
      // `on_resolve(None)`); an explicit error is only present on the
      // host-driven rejection path (see `reject()`).
      this.onResolve(args?.error ?? null);
      this.#state = AsyncTask.State.RESOLVED;
      // A task cancelled before entry has no driver loop that can
      // report its exit. Entered tasks notify after releasing their
      // component slice in `exit()`.
      if (!this.#entered) { this.notifyProgress(); }
    }
    
    onResolve(taskValue) {
      const handlers = this.#onResolveHandlers;
      this.#onResolveHandlers = [];
      for (const f of handlers) {
        try {
          f(taskValue);
        } catch (err) {
          _debugLog("[AsyncTask#onResolve] error during task resolve handler", err);
          throw err;
        }
      }
      
      // Rejections are control-flow failures, not canonical ABI results.
      // Propagate them through the subtask chain without running return
      // lowering or post-return hooks for a successful result.
      if (this.#rejected) {
        this.#parentSubtask?.reject(taskValue);
        return;
      }
      
      // NOTE: if the parent subtask has already been resolved (e.g. it was
      // cancelled via `subtask.cancel` while this task was still pending),
      // this task's resolution must be discarded rather than delivered.
      const parentSubtaskPending = this.#parentSubtask && !this.#parentSubtask.isResolved();
      const taskReturned = !this.isCancelled();
      
      if (parentSubtaskPending && taskReturned) {
        const meta = this.#parentSubtask.getCallMetadata();
        // Run the rturn fn if it has not already been called -- this *should* have happened in
        // `task.return`, but some paths do not go through task.return (e.g. async lower of sync fn
        // which goes through prepare + async-start-call)
        if (meta.returnFn && !meta.returnFnCalled) {
          _debugLog('[AsyncTask#onResolve()] running returnFn', {
            componentIdx: this.#componentIdx,
            taskID: this.#id,
            subtaskID: this.#parentSubtask.id(),
          });
          const callerTask = this.#parentSubtask.getParentTask();
          _withGlobalCurrentTaskMeta({
            taskID: callerTask.id(),
            componentIdx: callerTask.componentIdx(),
            fn: () => meta.returnFn.apply(null, [taskValue, meta.resultPtr]),
          });
          meta.returnFnCalled = true;
        }
      }
      
      if (this.#postReturnFn && taskReturned) {
        _debugLog('[AsyncTask#onResolve()] running post return ', {
          componentIdx: this.#componentIdx,
          taskID: this.#id,
        });
        try {
          _withGlobalCurrentTaskMeta({
            taskID: this.#id,
            componentIdx: this.#componentIdx,
            fn: () => this.#postReturnFn(taskValue),
          });
        } catch (err) {
          _debugLog("[AsyncTask#onResolve] error during task resolve handler", err);
          throw err;
        }
      }
      
      if (parentSubtaskPending) {
        this.#parentSubtask.onResolve(taskValue);
      }
    }
    
    registerOnResolveHandler(f) {
      this.#onResolveHandlers.push(f);
    }
    
    isRejected() { return this.#rejected; }
    
    isErrored() { return this.#errored; }
    setErrored(err) {
      // Preserve the originating trap when unwinding through
      // additional guest frames produces secondary traps (often
      // an `unreachable` after a call which was expected to trap).
      if (this.#errored === null) { this.#errored = err; }
    }
    
    reject(taskErr) {
      _debugLog('[AsyncTask#reject()] args', {
        componentIdx: this.#componentIdx,
        taskID: this.#id,
        parentSubtask: this.#parentSubtask,
        parentSubtaskID: this.#parentSubtask?.id(),
        entryFnName: this.entryFnName(),
        callbackFnName: this.#callbackFnName,
        errMsg: taskErr.message,
      });
      
      this.setErrored(taskErr);
      if (this.#rejected) { return; }
      
      // A task may call `task.return` before its callback exits.
      // A trap in cleanup or spawned work must still reject the
      // host call and poison the enclosing task chain.
      if (this.isResolvedState()) {
        this.#rejected = true;
        this.#errored = taskErr;
        const parentTask = this.#parentSubtask?.getParentTask();
        if (parentTask) { parentTask.reject(taskErr); }
        return;
      }
      
      this.#rejected = true;
      this.cancelRequested = true;
      this.#state = AsyncTask.State.CANCEL_PENDING;
      const cancelled = this.deliverPendingCancel({ cancellable: true });
      
      // TODO: do cleanup here to reset the machinery so we can run again?
      
      this.cancel({ error: taskErr });
    }
    
    resolve(results) {
      _debugLog('[AsyncTask#resolve()] args', {
        componentIdx: this.#componentIdx,
        taskID: this.#id,
        entryFnName: this.entryFnName(),
        callbackFnName: this.#callbackFnName,
      });
      
      if (this.#state === AsyncTask.State.RESOLVED) {
        throw new Error(`(component [${this.#componentIdx}]) task [${this.#id}]  is already resolved (did you forget to wait for an import?)`);
      }
      
      this.validateResourceBorrowScope();
      
      this.#state = AsyncTask.State.RESOLVED;
      
      switch (results.length) {
        case 0:
        this.onResolve(undefined);
        break;
        case 1:
        this.onResolve(results[0]);
        break;
        default:
        _debugLog('[AsyncTask#resolve()] unexpected number of results', {
          componentIdx: this.#componentIdx,
          results,
          taskID: this.#id,
          subtaskID: this.#parentSubtask?.id(),
          entryFnName: this.#entryFnName,
          callbackFnName: this.#callbackFnName,
        });
        throw new Error('unexpected number of results');
      }
    }
    
    exit(args) {
      _debugLog('[AsyncTask#exit()]', {
        componentIdx: this.#componentIdx,
        taskID: this.#id,
      });
      
      if (this.#exited)  { throw new Error("task has already exited"); }
      
      if (this.#state !== AsyncTask.State.RESOLVED) {
        throw new Error(`(component [${this.#componentIdx}]) task [${this.#id}] exited without resolution`);
      }
      
      this.validateResourceBorrowScope();
      
      const state = getOrCreateAsyncState(this.#componentIdx);
      if (!state) { throw new Error('missing async state for component [' + this.#componentIdx + ']'); }
      
      // Exempt the host from exclusive lock check
      if (this.#componentIdx !== -1 && !args?.skipExclusiveLockCheck && !this.#lockFreeEntry) {
        if (this.needsExclusiveLock() && !state.exclusivelyLockedBy(this.#id)) {
          throw new Error(`task [${this.#id}] exit: component [${this.#componentIdx}] should have been exclusively locked by it`);
        }
      }
      
      // Ownership-checked: releases only this task's own hold (a
      // task exiting while another task's slice holds the lock no
      // longer clears the foreign hold).
      state.exclusiveRelease(this.#id);
      this.notifyProgress();
      
      for (const f of this.#onExitHandlers) {
        try {
          f();
        } catch (err) {
          console.error("error during task exit handler", err);
          throw err;
        }
      }
      
      this.#exited = true;
      clearCurrentTask(this.#componentIdx, this.id());
    }
    
    needsExclusiveLock() {
      // Host (-1) tasks model host-side import handling: there is no
      // guest linear memory or executor state to protect, and host
      // calls from unrelated guest components would contend spuriously.
      if (this.#componentIdx === -1) { return false; }
      // Import-handler tasks (CallInterface) run host code nested
      // inside the calling guest slice, which already holds the
      // lock; only tasks that execute guest slices need it.
      if (!this.#callingWasmExport) { return false; }
      // A sync-lifted callee cannot be reentered until the whole
      // stackful call returns. This is the Component Model's
      // automatic-backpressure rule for async-lowered calls.
      return !this.#isAsync || this.hasCallback() || this.#calleeIsAsync === false;
    }
    
    createSubtask(args) {
      _debugLog('[AsyncTask#createSubtask()] args', args);
      const { componentIdx, childTask, callMetadata, fnName, isAsync, isManualAsync } = args;
      
      const cstate = getOrCreateAsyncState(this.#componentIdx);
      if (!cstate) {
        throw new Error(`invalid/missing async state for component idx [${componentIdx}]`);
      }
      
      const waitable = new Waitable({
        componentIdx: this.#componentIdx,
        target: `subtask (internal ID [${this.#id}])`,
      });
      
      const newSubtask = new AsyncSubtask({
        componentIdx,
        childTask,
        parentTask: this,
        callMetadata,
        isAsync,
        isManualAsync,
        fnName,
        waitable,
      });
      this.#subtasks.push(newSubtask);
      newSubtask.setTarget(`subtask (internal ID [${newSubtask.id()}], waitable [${waitable.idx()}], component [${componentIdx}])`);
      waitable.setIdx(cstate.handles.insert(newSubtask));
      waitable.setTarget(`waitable for subtask (waitable id [${waitable.idx()}], subtask internal ID [${newSubtask.id()}])`);
      return newSubtask;
    }
    
    getLatestSubtask() {
      return this.#subtasks.at(-1);
    }
    
    getSubtaskByWaitableRep(rep) {
      if (rep === undefined) { throw new TypeError('missing rep'); }
      return this.#subtasks.find(s => s.waitableRep() === rep);
    }
    
    currentSubtask() {
      _debugLog('[AsyncTask#currentSubtask()]');
      if (this.#subtasks.length === 0) { return undefined; }
      return this.#subtasks.at(-1);
    }
    
    removeSubtask(subtask) {
      if (this.#subtasks.length === 0) {
        throw new Error('cannot end current subtask: no current subtask');
      }
      this.#subtasks = this.#subtasks.filter(t => t !== subtask);
      return subtask;
    }
  }
  
  function createNewCurrentTask(args) {
    _debugLog('[createNewCurrentTask()] args', args);
    const {
      componentIdx,
      isAsync,
      isManualAsync,
      preserveFutureResult,
      entryFnName,
      parentSubtaskID,
      callbackFnName,
      getCallbackFn,
      getParamsFn,
      stringEncoding,
      errHandling,
      getCalleeParamsFn,
      resultPtr,
      callingWasmExport,
    } = args;
    if (componentIdx === undefined || componentIdx === null) {
      throw new Error('missing/invalid component instance index while starting task');
    }
    let taskMetas = ASYNC_TASKS_BY_COMPONENT_IDX.get(componentIdx);
    const callbackFn = getCallbackFn ? getCallbackFn() : null;
    
    const newTask = new AsyncTask({
      componentIdx,
      isAsync,
      isManualAsync,
      preserveFutureResult,
      entryFnName,
      callbackFn,
      callbackFnName,
      stringEncoding,
      getCalleeParamsFn,
      resultPtr,
      errHandling,
      callingWasmExport,
    });
    
    const newTaskID = newTask.id();
    const newTaskMeta = { id: newTaskID, componentIdx, task: newTask };
    
    // NOTE: do not track host tasks
    ASYNC_CURRENT_TASK_IDS.push(newTaskID);
    ASYNC_CURRENT_COMPONENT_IDXS.push(componentIdx);
    
    if (!taskMetas) {
      taskMetas = [newTaskMeta];
      ASYNC_TASKS_BY_COMPONENT_IDX.set(componentIdx, [newTaskMeta]);
    } else {
      taskMetas.push(newTaskMeta);
    }
    
    return [newTask, newTaskID];
  }
  
  const CURRENT_TASK_MAY_BLOCK= globalThis.WebAssembly ? new globalThis.WebAssembly.Global({ value: 'i32', mutable: true }, 0) : false;
  
  
  function _checkMayLeave(componentIdx) {
    if (INSTANCE_FLAGS.get(componentIdx)?.value !== 1) {
      throw new WebAssemblyRuntimeError('cannot leave component instance');
    }
  }
  
  function _guardMayLeave(componentIdx, fn) {
    return function (...args) {
      _checkMayLeave(componentIdx);
      return fn.apply(this, args);
    };
  }
  
  function clampGuest(i, min, max) {
    if (i < min || i > max) {
      throw new TypeError(`must be between ${min} and ${max}`);
    }
    return i;
  }
  
  
  const isNode = typeof process !== 'undefined' && process.versions && process.versions.node;
  let _fs;
  async function fetchCompile (url) {
    if (isNode) {
      _fs = _fs || await import('node:fs/promises');
      return WebAssembly.compile(await _fs.readFile(url));
    }
    return fetch(url).then(WebAssembly.compileStreaming);
  }
  
  const symbolRscHandle = Symbol('handle');
  const symbolDispose = Symbol.dispose || Symbol.for('dispose');
  
  const HANDLE_TABLES= [];
  
  
  function finalizationRegistryCreate (unregister) {
    if (typeof FinalizationRegistry === 'undefined') {
      return { unregister () {} };
    }
    return new FinalizationRegistry(unregister);
  }
  
  class ComponentError extends Error {
    constructor (value) {
      const enumerable = typeof value !== 'string';
      super(enumerable ? `${String(value)} (see error.payload)` : value);
      Object.defineProperty(this, 'payload', { value, enumerable });
    }
  }
  
  
  if (!getCoreModule) getCoreModule = (name) => fetchCompile(new URL(`./${name}`, import.meta.url));
  const module0 = getCoreModule('sbd_component.core.wasm');
  const module1 = getCoreModule('sbd_component.core2.wasm');
  const module2 = getCoreModule('sbd_component.core3.wasm');
  
  let gen= (function* _initGenerator () {
    const instanceFlags0 = new WebAssembly.Global({ value: "i32", mutable: true }, 1);
    INSTANCE_FLAGS.set(0, instanceFlags0);
    let exports0;
    let exports1;
    let exports2;
    let memory0;
    let realloc0;
    let realloc0Async;
    let postReturn0;
    let postReturn0Async;
    let postReturn1;
    let postReturn1Async;
    let postReturn2;
    let postReturn2Async;
    let postReturn3;
    let postReturn3Async;
    let postReturn4;
    let postReturn4Async;
    let postReturn5;
    let postReturn5Async;
    let postReturn6;
    let postReturn6Async;
    
    const handleTable0 = [T_FLAG, 0];
    handleTable0._createdReps = new Set();
    handleTable0._componentIdx = 0;
    const finalizationRegistry0 = finalizationRegistryCreate((handle) => {
      const { rep } = rscTableRemove(handleTable0, handle);
      exports0['0'](rep);
    });
    
    HANDLE_TABLES[0] = handleTable0;
    let policy010StaticDelegationPolicyCreate;
    
    class DelegationPolicy{
      constructor () {
        throw new Error('"DelegationPolicy" resource does not define a constructor');
      }
    }
    
    DelegationPolicy.create = function create(arg0) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010StaticDelegationPolicyCreate',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'throw-result-err',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            var val0 = arg0;
            var len0 = Array.isArray(val0) ? val0.length : val0.byteLength;
            var ptr0 = realloc0(0, 0, 1, len0 * 1);
            
            let valData0;
            const valLenBytes0 = len0 * 1;
            if (Array.isArray(val0)) {
              // Regular array likely containing numbers, write values to memory
              let offset = 0;
              const dv0 = new DataView(memory0.buffer);
              for (const v of val0) {
                _requireValidNumericPrimitive.bind(null, 'u8')(v);
                dv0.setUint8(ptr0+ offset, v, true);
                offset += 1;
              }
            } else {
              // TypedArray / ArrayBuffer-like, direct copy
              valData0 = new Uint8Array(val0.buffer || val0, val0.byteOffset, valLenBytes0);
              const out0 = new Uint8Array(memory0.buffer, ptr0, valLenBytes0);
              out0.set(valData0);
            }
            
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[static]delegation-policy.create"][Instruction::CallWasm] enter', {
              funcName: '[static]delegation-policy.create',
              paramCount: 2,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010StaticDelegationPolicyCreate(ptr0, len0),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            let variant4;
            switch (dataView(memory0).getUint8(ret + 0, true)) {
              case 0: {
                var handle2 = dataView(memory0).getInt32(ret + 4, true);
                var rsc1 = new.target === DelegationPolicy ? this : Object.create(DelegationPolicy.prototype);
                Object.defineProperty(rsc1, symbolRscHandle, { writable: true, value: handle2});
                finalizationRegistry0.register(rsc1, handle2, rsc1);
                Object.defineProperty(rsc1, symbolDispose, { writable: true, value: function () {
                  finalizationRegistry0.unregister(rsc1);
                  const handleEntry = rscTableRemove(handleTable0, handle2);
                  rsc1[symbolDispose] = emptyFunc;
                  rsc1[symbolRscHandle] = undefined;
                  exports0['0'](handleEntry.rep);
                }});
                variant4= {
                  tag: 'ok',
                  val: rsc1
                };
                break;
              }
              case 1: {
                var ptr3 = dataView(memory0).getUint32(ret + 4, true);
                var len3 = dataView(memory0).getUint32(ret + 8, true);
                var result3 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr3, len3));
                variant4= {
                  tag: 'err',
                  val: {
                    message: result3,
                  }
                };
                break;
              }
              default: {
                throw new TypeError('invalid variant discriminant for expected');
              }
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[static]delegation-policy.create"][Instruction::Return]', {
              funcName: '[static]delegation-policy.create',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            const retCopy = variant4;
            task.resolve([retCopy.val]);
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn0(ret);
            cstate.mayLeave = true;
            task.exit();
            
            
            
            if (typeof retCopy === 'object' && retCopy.tag === 'err') {
              throw new ComponentError(retCopy.val);
            }
            return retCopy.val;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010StaticDelegationPolicyCreateFromText;
    
    DelegationPolicy.createFromText = function createFromText(arg0, arg1, arg2) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010StaticDelegationPolicyCreateFromText',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'throw-result-err',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            
            var encodeRes = _utf8AllocateAndEncode(arg0, realloc0, memory0);
            var ptr0= encodeRes.ptr;
            var len0 = encodeRes.len;
            
            var val1 = arg1;
            let enum1;
            switch (val1) {
              case 'json': {
                enum1 = 0;
                break;
              }
              case 'toml': {
                enum1 = 1;
                break;
              }
              default: {
                if ((arg1) instanceof Error) {
                  console.error(arg1);
                }
                
                throw new TypeError(`"${val1}" is not one of the cases of config-format`);
              }
            }
            var variant3 = arg2;
            let variant3_0;
            let variant3_1;
            let variant3_2;
            if (variant3 === null || variant3=== undefined) {
              variant3_0 = 0;
              variant3_1 = 0;
              variant3_2 = 0;
            } else {
              const e = variant3;
              var val2 = e;
              var len2 = Array.isArray(val2) ? val2.length : val2.byteLength;
              var ptr2 = realloc0(0, 0, 1, len2 * 1);
              
              let valData2;
              const valLenBytes2 = len2 * 1;
              if (Array.isArray(val2)) {
                // Regular array likely containing numbers, write values to memory
                let offset = 0;
                const dv2 = new DataView(memory0.buffer);
                for (const v of val2) {
                  _requireValidNumericPrimitive.bind(null, 'u8')(v);
                  dv2.setUint8(ptr2+ offset, v, true);
                  offset += 1;
                }
              } else {
                // TypedArray / ArrayBuffer-like, direct copy
                valData2 = new Uint8Array(val2.buffer || val2, val2.byteOffset, valLenBytes2);
                const out2 = new Uint8Array(memory0.buffer, ptr2, valLenBytes2);
                out2.set(valData2);
              }
              
              variant3_0 = 1;
              variant3_1 = ptr2;
              variant3_2 = len2;
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[static]delegation-policy.create-from-text"][Instruction::CallWasm] enter', {
              funcName: '[static]delegation-policy.create-from-text',
              paramCount: 6,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010StaticDelegationPolicyCreateFromText(ptr0, len0, enum1, variant3_0, variant3_1, variant3_2),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            let variant7;
            switch (dataView(memory0).getUint8(ret + 0, true)) {
              case 0: {
                var handle5 = dataView(memory0).getInt32(ret + 4, true);
                var rsc4 = new.target === DelegationPolicy ? this : Object.create(DelegationPolicy.prototype);
                Object.defineProperty(rsc4, symbolRscHandle, { writable: true, value: handle5});
                finalizationRegistry0.register(rsc4, handle5, rsc4);
                Object.defineProperty(rsc4, symbolDispose, { writable: true, value: function () {
                  finalizationRegistry0.unregister(rsc4);
                  const handleEntry = rscTableRemove(handleTable0, handle5);
                  rsc4[symbolDispose] = emptyFunc;
                  rsc4[symbolRscHandle] = undefined;
                  exports0['0'](handleEntry.rep);
                }});
                variant7= {
                  tag: 'ok',
                  val: rsc4
                };
                break;
              }
              case 1: {
                var ptr6 = dataView(memory0).getUint32(ret + 4, true);
                var len6 = dataView(memory0).getUint32(ret + 8, true);
                var result6 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr6, len6));
                variant7= {
                  tag: 'err',
                  val: {
                    message: result6,
                  }
                };
                break;
              }
              default: {
                throw new TypeError('invalid variant discriminant for expected');
              }
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[static]delegation-policy.create-from-text"][Instruction::Return]', {
              funcName: '[static]delegation-policy.create-from-text',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            const retCopy = variant7;
            task.resolve([retCopy.val]);
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn0(ret);
            cstate.mayLeave = true;
            task.exit();
            
            
            
            if (typeof retCopy === 'object' && retCopy.tag === 'err') {
              throw new ComponentError(retCopy.val);
            }
            return retCopy.val;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010MethodDelegationPolicyEvaluate;
    
    DelegationPolicy.prototype.evaluate = function evaluate(arg1) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010MethodDelegationPolicyEvaluate',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'none',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            var ptr0 = realloc0(0, 0, 8, 288);
            
            var handle2 = this[symbolRscHandle];
            if (!handle2 || (handleTable0[(handle2 << 1) + 1] & T_FLAG) === 0) {
              throw new TypeError('Resource error: Not a valid \"DelegationPolicy\" resource.');
            }
            var handle1 = handleTable0[(handle2 << 1) + 1] & ~T_FLAG;
            
            dataView(memory0).setInt32(ptr0 + 0, handle1, true);
            var {from: v3_0, to: v3_1, task: v3_2, parentMandate: v3_3, requestedMandate: v3_4, chain: v3_5, state: v3_6, depthException: v3_7, actionMask: v3_8, registry: v3_9, now: v3_10 } = arg1;
            var {id: v4_0, trust: v4_1 } = v3_0;
            
            var encodeRes = _utf8AllocateAndEncode(v4_0, realloc0, memory0);
            var ptr5= encodeRes.ptr;
            var len5 = encodeRes.len;
            
            dataView(memory0).setUint32(ptr0 + 12, len5, true);
            dataView(memory0).setUint32(ptr0 + 8, ptr5, true);
            dataView(memory0).setInt16(ptr0 + 16, toUint16(v4_1), true);
            var {id: v6_0, trust: v6_1 } = v3_1;
            
            var encodeRes = _utf8AllocateAndEncode(v6_0, realloc0, memory0);
            var ptr7= encodeRes.ptr;
            var len7 = encodeRes.len;
            
            dataView(memory0).setUint32(ptr0 + 24, len7, true);
            dataView(memory0).setUint32(ptr0 + 20, ptr7, true);
            dataView(memory0).setInt16(ptr0 + 28, toUint16(v6_1), true);
            var {id: v8_0, actionKind: v8_1, risk: v8_2, value: v8_3, counterparty: v8_4, completableLocally: v8_5 } = v3_2;
            
            var encodeRes = _utf8AllocateAndEncode(v8_0, realloc0, memory0);
            var ptr9= encodeRes.ptr;
            var len9 = encodeRes.len;
            
            dataView(memory0).setUint32(ptr0 + 36, len9, true);
            dataView(memory0).setUint32(ptr0 + 32, ptr9, true);
            
            var encodeRes = _utf8AllocateAndEncode(v8_1, realloc0, memory0);
            var ptr10= encodeRes.ptr;
            var len10 = encodeRes.len;
            
            dataView(memory0).setUint32(ptr0 + 44, len10, true);
            dataView(memory0).setUint32(ptr0 + 40, ptr10, true);
            var val11 = v8_2;
            let enum11;
            switch (val11) {
              case 'low': {
                enum11 = 0;
                break;
              }
              case 'medium': {
                enum11 = 1;
                break;
              }
              case 'high': {
                enum11 = 2;
                break;
              }
              case 'critical': {
                enum11 = 3;
                break;
              }
              default: {
                if ((v8_2) instanceof Error) {
                  console.error(v8_2);
                }
                
                throw new TypeError(`"${val11}" is not one of the cases of risk-level`);
              }
            }
            dataView(memory0).setInt8(ptr0 + 48, enum11, true);
            dataView(memory0).setBigInt64(ptr0 + 56, toUint64(v8_3), true);
            var variant13 = v8_4;
            if (variant13 === null || variant13=== undefined) {
              dataView(memory0).setInt8(ptr0 + 64, 0, true);
            } else {
              const e = variant13;
              dataView(memory0).setInt8(ptr0 + 64, 1, true);
              
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr12= encodeRes.ptr;
              var len12 = encodeRes.len;
              
              dataView(memory0).setUint32(ptr0 + 72, len12, true);
              dataView(memory0).setUint32(ptr0 + 68, ptr12, true);
            }
            dataView(memory0).setInt8(ptr0 + 76, v8_5 ? 1 : 0, true);
            var {valueCeiling: v14_0, actionKinds: v14_1, counterparties: v14_2, budgets: v14_3, remainingDepth: v14_4, expiresAt: v14_5 } = v3_3;
            dataView(memory0).setBigInt64(ptr0 + 80, toUint64(v14_0), true);
            var vec16 = v14_1;
            var len16 = vec16.length;
            var result16 = realloc0(0, 0, 4, len16 * 8);
            for (let i = 0; i < vec16.length; i++) {
              const e = vec16[i];
              const base = result16 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr15= encodeRes.ptr;
              var len15 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len15, true);
              dataView(memory0).setUint32(base + 0, ptr15, true);
            }
            dataView(memory0).setUint32(ptr0 + 92, len16, true);
            dataView(memory0).setUint32(ptr0 + 88, result16, true);
            var vec18 = v14_2;
            var len18 = vec18.length;
            var result18 = realloc0(0, 0, 4, len18 * 8);
            for (let i = 0; i < vec18.length; i++) {
              const e = vec18[i];
              const base = result18 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr17= encodeRes.ptr;
              var len17 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len17, true);
              dataView(memory0).setUint32(base + 0, ptr17, true);
            }
            dataView(memory0).setUint32(ptr0 + 100, len18, true);
            dataView(memory0).setUint32(ptr0 + 96, result18, true);
            var vec21 = v14_3;
            var len21 = vec21.length;
            var result21 = realloc0(0, 0, 8, len21 * 16);
            for (let i = 0; i < vec21.length; i++) {
              const e = vec21[i];
              const base = result21 + i * 16;var {unit: v19_0, amount: v19_1 } = e;
              var val20 = v19_0;
              let enum20;
              switch (val20) {
                case 'usd-microcents': {
                  enum20 = 0;
                  break;
                }
                case 'tokens': {
                  enum20 = 1;
                  break;
                }
                case 'credits': {
                  enum20 = 2;
                  break;
                }
                case 'risk-points': {
                  enum20 = 3;
                  break;
                }
                default: {
                  if ((v19_0) instanceof Error) {
                    console.error(v19_0);
                  }
                  
                  throw new TypeError(`"${val20}" is not one of the cases of budget-unit`);
                }
              }
              dataView(memory0).setInt8(base + 0, enum20, true);
              dataView(memory0).setBigInt64(base + 8, toUint64(v19_1), true);
            }
            dataView(memory0).setUint32(ptr0 + 108, len21, true);
            dataView(memory0).setUint32(ptr0 + 104, result21, true);
            dataView(memory0).setInt8(ptr0 + 112, toUint8(v14_4), true);
            dataView(memory0).setBigInt64(ptr0 + 120, toUint64(v14_5), true);
            var {valueCeiling: v22_0, actionKinds: v22_1, counterparties: v22_2, budgets: v22_3, remainingDepth: v22_4, expiresAt: v22_5 } = v3_4;
            dataView(memory0).setBigInt64(ptr0 + 128, toUint64(v22_0), true);
            var vec24 = v22_1;
            var len24 = vec24.length;
            var result24 = realloc0(0, 0, 4, len24 * 8);
            for (let i = 0; i < vec24.length; i++) {
              const e = vec24[i];
              const base = result24 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr23= encodeRes.ptr;
              var len23 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len23, true);
              dataView(memory0).setUint32(base + 0, ptr23, true);
            }
            dataView(memory0).setUint32(ptr0 + 140, len24, true);
            dataView(memory0).setUint32(ptr0 + 136, result24, true);
            var vec26 = v22_2;
            var len26 = vec26.length;
            var result26 = realloc0(0, 0, 4, len26 * 8);
            for (let i = 0; i < vec26.length; i++) {
              const e = vec26[i];
              const base = result26 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr25= encodeRes.ptr;
              var len25 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len25, true);
              dataView(memory0).setUint32(base + 0, ptr25, true);
            }
            dataView(memory0).setUint32(ptr0 + 148, len26, true);
            dataView(memory0).setUint32(ptr0 + 144, result26, true);
            var vec29 = v22_3;
            var len29 = vec29.length;
            var result29 = realloc0(0, 0, 8, len29 * 16);
            for (let i = 0; i < vec29.length; i++) {
              const e = vec29[i];
              const base = result29 + i * 16;var {unit: v27_0, amount: v27_1 } = e;
              var val28 = v27_0;
              let enum28;
              switch (val28) {
                case 'usd-microcents': {
                  enum28 = 0;
                  break;
                }
                case 'tokens': {
                  enum28 = 1;
                  break;
                }
                case 'credits': {
                  enum28 = 2;
                  break;
                }
                case 'risk-points': {
                  enum28 = 3;
                  break;
                }
                default: {
                  if ((v27_0) instanceof Error) {
                    console.error(v27_0);
                  }
                  
                  throw new TypeError(`"${val28}" is not one of the cases of budget-unit`);
                }
              }
              dataView(memory0).setInt8(base + 0, enum28, true);
              dataView(memory0).setBigInt64(base + 8, toUint64(v27_1), true);
            }
            dataView(memory0).setUint32(ptr0 + 156, len29, true);
            dataView(memory0).setUint32(ptr0 + 152, result29, true);
            dataView(memory0).setInt8(ptr0 + 160, toUint8(v22_4), true);
            dataView(memory0).setBigInt64(ptr0 + 168, toUint64(v22_5), true);
            var vec34 = v3_5;
            var len34 = vec34.length;
            var result34 = realloc0(0, 0, 8, len34 * 48);
            for (let i = 0; i < vec34.length; i++) {
              const e = vec34[i];
              const base = result34 + i * 48;var {from: v30_0, to: v30_1, depth: v30_2, alpha: v30_3, at: v30_4, reason: v30_5 } = e;
              
              var encodeRes = _utf8AllocateAndEncode(v30_0, realloc0, memory0);
              var ptr31= encodeRes.ptr;
              var len31 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len31, true);
              dataView(memory0).setUint32(base + 0, ptr31, true);
              
              var encodeRes = _utf8AllocateAndEncode(v30_1, realloc0, memory0);
              var ptr32= encodeRes.ptr;
              var len32 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 12, len32, true);
              dataView(memory0).setUint32(base + 8, ptr32, true);
              dataView(memory0).setInt8(base + 16, toUint8(v30_2), true);
              dataView(memory0).setFloat64(base + 24, +v30_3, true);
              dataView(memory0).setBigInt64(base + 32, toUint64(v30_4), true);
              
              var encodeRes = _utf8AllocateAndEncode(v30_5, realloc0, memory0);
              var ptr33= encodeRes.ptr;
              var len33 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 44, len33, true);
              dataView(memory0).setUint32(base + 40, ptr33, true);
            }
            dataView(memory0).setUint32(ptr0 + 180, len34, true);
            dataView(memory0).setUint32(ptr0 + 176, result34, true);
            var val35 = v3_6;
            var len35 = val35.length;
            var ptr35 = realloc0(0, 0, 8, len35 * 8);
            
            let valData35;
            const valLenBytes35 = len35 * 8;
            if (Array.isArray(val35)) {
              // Regular array likely containing numbers, write values to memory
              let offset = 0;
              const dv35 = new DataView(memory0.buffer);
              for (const v of val35) {
                _requireValidNumericPrimitive.bind(null, 'f64')(v);
                dv35.setFloat64(ptr35+ offset, v, true);
                offset += 8;
              }
            } else {
              // TypedArray / ArrayBuffer-like, direct copy
              valData35 = new Uint8Array(val35.buffer || val35, val35.byteOffset, valLenBytes35);
              const out35 = new Uint8Array(memory0.buffer, ptr35, valLenBytes35);
              out35.set(valData35);
            }
            
            dataView(memory0).setUint32(ptr0 + 188, len35, true);
            dataView(memory0).setUint32(ptr0 + 184, ptr35, true);
            var variant39 = v3_7;
            if (variant39 === null || variant39=== undefined) {
              dataView(memory0).setInt8(ptr0 + 192, 0, true);
            } else {
              const e = variant39;
              dataView(memory0).setInt8(ptr0 + 192, 1, true);
              var {approvedBy: v36_0, justification: v36_1, extraDepth: v36_2, expiresAt: v36_3 } = e;
              
              var encodeRes = _utf8AllocateAndEncode(v36_0, realloc0, memory0);
              var ptr37= encodeRes.ptr;
              var len37 = encodeRes.len;
              
              dataView(memory0).setUint32(ptr0 + 204, len37, true);
              dataView(memory0).setUint32(ptr0 + 200, ptr37, true);
              
              var encodeRes = _utf8AllocateAndEncode(v36_1, realloc0, memory0);
              var ptr38= encodeRes.ptr;
              var len38 = encodeRes.len;
              
              dataView(memory0).setUint32(ptr0 + 212, len38, true);
              dataView(memory0).setUint32(ptr0 + 208, ptr38, true);
              dataView(memory0).setInt8(ptr0 + 216, toUint8(v36_2), true);
              dataView(memory0).setBigInt64(ptr0 + 224, toUint64(v36_3), true);
            }
            var variant44 = v3_8;
            if (variant44 === null || variant44=== undefined) {
              dataView(memory0).setInt8(ptr0 + 232, 0, true);
            } else {
              const e = variant44;
              dataView(memory0).setInt8(ptr0 + 232, 1, true);
              var {toolsets: v40_0, cost: v40_1 } = e;
              var vec43 = v40_0;
              var len43 = vec43.length;
              var result43 = realloc0(0, 0, 8, len43 * 16);
              for (let i = 0; i < vec43.length; i++) {
                const e = vec43[i];
                const base = result43 + i * 16;var {toolset: v41_0, remaining: v41_1 } = e;
                
                var encodeRes = _utf8AllocateAndEncode(v41_0, realloc0, memory0);
                var ptr42= encodeRes.ptr;
                var len42 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 4, len42, true);
                dataView(memory0).setUint32(base + 0, ptr42, true);
                dataView(memory0).setBigInt64(base + 8, toUint64(v41_1), true);
              }
              dataView(memory0).setUint32(ptr0 + 244, len43, true);
              dataView(memory0).setUint32(ptr0 + 240, result43, true);
              dataView(memory0).setBigInt64(ptr0 + 248, toUint64(v40_1), true);
            }
            var variant48 = v3_9;
            if (variant48 === null || variant48=== undefined) {
              dataView(memory0).setInt8(ptr0 + 256, 0, true);
            } else {
              const e = variant48;
              dataView(memory0).setInt8(ptr0 + 256, 1, true);
              var {delegatorRegistered: v45_0, delegateRegistered: v45_1, unregistered: v45_2, reviewer: v45_3, explicitDelegation: v45_4, delegateListed: v45_5 } = e;
              dataView(memory0).setInt8(ptr0 + 260, v45_0 ? 1 : 0, true);
              dataView(memory0).setInt8(ptr0 + 261, v45_1 ? 1 : 0, true);
              var val46 = v45_2;
              let enum46;
              switch (val46) {
                case 'deny': {
                  enum46 = 0;
                  break;
                }
                case 'escalate': {
                  enum46 = 1;
                  break;
                }
                default: {
                  if ((v45_2) instanceof Error) {
                    console.error(v45_2);
                  }
                  
                  throw new TypeError(`"${val46}" is not one of the cases of unregistered-rule`);
                }
              }
              dataView(memory0).setInt8(ptr0 + 262, enum46, true);
              
              var encodeRes = _utf8AllocateAndEncode(v45_3, realloc0, memory0);
              var ptr47= encodeRes.ptr;
              var len47 = encodeRes.len;
              
              dataView(memory0).setUint32(ptr0 + 268, len47, true);
              dataView(memory0).setUint32(ptr0 + 264, ptr47, true);
              dataView(memory0).setInt8(ptr0 + 272, v45_4 ? 1 : 0, true);
              dataView(memory0).setInt8(ptr0 + 273, v45_5 ? 1 : 0, true);
            }
            dataView(memory0).setBigInt64(ptr0 + 280, toUint64(v3_10), true);
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.evaluate"][Instruction::CallWasm] enter', {
              funcName: '[method]delegation-policy.evaluate',
              paramCount: 1,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010MethodDelegationPolicyEvaluate(ptr0),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            let variant69;
            switch (dataView(memory0).getUint8(ret + 0, true)) {
              case 0: {
                var ptr49 = dataView(memory0).getUint32(ret + 24, true);
                var len49 = dataView(memory0).getUint32(ret + 28, true);
                var result49 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr49, len49));
                let enum50;
                switch (dataView(memory0).getUint8(ret + 34, true)) {
                  case 0: {
                    enum50 = 't0';
                    break;
                  }
                  case 1: {
                    enum50 = 't1';
                    break;
                  }
                  case 2: {
                    enum50 = 't2';
                    break;
                  }
                  case 3: {
                    enum50 = 't3';
                    break;
                  }
                  case 4: {
                    enum50 = 't4';
                    break;
                  }
                  case 5: {
                    enum50 = 't5';
                    break;
                  }
                  case 6: {
                    enum50 = 't6';
                    break;
                  }
                  case 7: {
                    enum50 = 't7';
                    break;
                  }
                  default: {
                    throw new TypeError('invalid discriminant specified for TrustTier');
                  }
                }
                var len52 = dataView(memory0).getUint32(ret + 52, true);
                var base52 = dataView(memory0).getUint32(ret + 48, true);
                if (base52 % 4 !== 0) throw new TypeError(`list pointer [${base52}] is not aligned to 4`);
                var result52 = [];
                for (let i = 0; i < len52; i++) {
                  const base = base52 + i * 8;
                  var ptr51 = dataView(memory0).getUint32(base + 0, true);
                  var len51 = dataView(memory0).getUint32(base + 4, true);
                  var result51 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr51, len51));
                  result52.push(result51);
                }
                var len54 = dataView(memory0).getUint32(ret + 60, true);
                var base54 = dataView(memory0).getUint32(ret + 56, true);
                if (base54 % 4 !== 0) throw new TypeError(`list pointer [${base54}] is not aligned to 4`);
                var result54 = [];
                for (let i = 0; i < len54; i++) {
                  const base = base54 + i * 8;
                  var ptr53 = dataView(memory0).getUint32(base + 0, true);
                  var len53 = dataView(memory0).getUint32(base + 4, true);
                  var result53 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr53, len53));
                  result54.push(result53);
                }
                var len56 = dataView(memory0).getUint32(ret + 68, true);
                var base56 = dataView(memory0).getUint32(ret + 64, true);
                if (base56 % 8 !== 0) throw new TypeError(`list pointer [${base56}] is not aligned to 8`);
                var result56 = [];
                for (let i = 0; i < len56; i++) {
                  const base = base56 + i * 16;
                  let enum55;
                  switch (dataView(memory0).getUint8(base + 0, true)) {
                    case 0: {
                      enum55 = 'usd-microcents';
                      break;
                    }
                    case 1: {
                      enum55 = 'tokens';
                      break;
                    }
                    case 2: {
                      enum55 = 'credits';
                      break;
                    }
                    case 3: {
                      enum55 = 'risk-points';
                      break;
                    }
                    default: {
                      throw new TypeError('invalid discriminant specified for BudgetUnit');
                    }
                  }
                  result56.push({
                    unit: enum55,
                    amount: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(base + 8, true))),
                  });
                }
                var len58 = dataView(memory0).getUint32(ret + 96, true);
                var base58 = dataView(memory0).getUint32(ret + 92, true);
                if (base58 % 8 !== 0) throw new TypeError(`list pointer [${base58}] is not aligned to 8`);
                var result58 = [];
                for (let i = 0; i < len58; i++) {
                  const base = base58 + i * 16;
                  var ptr57 = dataView(memory0).getUint32(base + 0, true);
                  var len57 = dataView(memory0).getUint32(base + 4, true);
                  var result57 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr57, len57));
                  result58.push({
                    agent: result57,
                    weight: dataView(memory0).getFloat64(base + 8, true),
                  });
                }
                var len61 = dataView(memory0).getUint32(ret + 116, true);
                var base61 = dataView(memory0).getUint32(ret + 112, true);
                if (base61 % 4 !== 0) throw new TypeError(`list pointer [${base61}] is not aligned to 4`);
                var result61 = [];
                for (let i = 0; i < len61; i++) {
                  const base = base61 + i * 20;
                  var ptr59 = dataView(memory0).getUint32(base + 4, true);
                  var len59 = dataView(memory0).getUint32(base + 8, true);
                  var result59 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr59, len59));
                  var ptr60 = dataView(memory0).getUint32(base + 12, true);
                  var len60 = dataView(memory0).getUint32(base + 16, true);
                  var result60 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr60, len60));
                  result61.push({
                    code: clampGuest(dataView(memory0).getUint16(base + 0, true), 0, 65535),
                    name: result59,
                    message: result60,
                  });
                }
                variant69= {
                  tag: 'allow',
                  val: {
                    alpha: dataView(memory0).getFloat64(ret + 8, true),
                    lambda: dataView(memory0).getFloat64(ret + 16, true),
                    subAgent: result49,
                    effectiveTrust: clampGuest(dataView(memory0).getUint16(ret + 32, true), 0, 65535),
                    effectiveTier: enum50,
                    childMandate: {
                      valueCeiling: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(ret + 40, true))),
                      actionKinds: result52,
                      counterparties: result54,
                      budgets: result56,
                      remainingDepth: clampGuest(dataView(memory0).getUint8(ret + 72, true), 0, 255),
                      expiresAt: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(ret + 80, true))),
                    },
                    depth: clampGuest(dataView(memory0).getUint8(ret + 88, true), 0, 255),
                    remainingDepth: clampGuest(dataView(memory0).getUint8(ret + 89, true), 0, 255),
                    maxDepth: clampGuest(dataView(memory0).getUint8(ret + 90, true), 0, 255),
                    accountability: result58,
                    accountabilityCeiling: dataView(memory0).getFloat64(ret + 104, true),
                    warnings: result61,
                  }
                };
                break;
              }
              case 1: {
                let variant64;
                switch (dataView(memory0).getUint8(ret + 8, true)) {
                  case 0: {
                    var ptr62 = dataView(memory0).getUint32(ret + 12, true);
                    var len62 = dataView(memory0).getUint32(ret + 16, true);
                    var result62 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr62, len62));
                    variant64= {
                      tag: 'human',
                      val: result62
                    };
                    break;
                  }
                  case 1: {
                    var ptr63 = dataView(memory0).getUint32(ret + 12, true);
                    var len63 = dataView(memory0).getUint32(ret + 16, true);
                    var result63 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr63, len63));
                    variant64= {
                      tag: 'agent',
                      val: result63
                    };
                    break;
                  }
                  default: {
                    throw new TypeError('invalid variant discriminant for EscalationTarget');
                  }
                }
                var ptr65 = dataView(memory0).getUint32(ret + 24, true);
                var len65 = dataView(memory0).getUint32(ret + 28, true);
                var result65 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr65, len65));
                var ptr66 = dataView(memory0).getUint32(ret + 32, true);
                var len66 = dataView(memory0).getUint32(ret + 36, true);
                var result66 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr66, len66));
                variant69= {
                  tag: 'escalate',
                  val: {
                    target: variant64,
                    code: clampGuest(dataView(memory0).getUint16(ret + 20, true), 0, 65535),
                    name: result65,
                    reason: result66,
                  }
                };
                break;
              }
              case 2: {
                var ptr67 = dataView(memory0).getUint32(ret + 12, true);
                var len67 = dataView(memory0).getUint32(ret + 16, true);
                var result67 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr67, len67));
                var ptr68 = dataView(memory0).getUint32(ret + 20, true);
                var len68 = dataView(memory0).getUint32(ret + 24, true);
                var result68 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr68, len68));
                variant69= {
                  tag: 'deny',
                  val: {
                    code: clampGuest(dataView(memory0).getUint16(ret + 8, true), 0, 65535),
                    name: result67,
                    message: result68,
                  }
                };
                break;
              }
              default: {
                throw new TypeError('invalid variant discriminant for Verdict');
              }
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.evaluate"][Instruction::Return]', {
              funcName: '[method]delegation-policy.evaluate',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            task.resolve([variant69]);
            const retCopy = variant69;
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn1(ret);
            cstate.mayLeave = true;
            task.exit();
            return retCopy;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010MethodDelegationPolicyEvaluateBatch;
    
    DelegationPolicy.prototype.evaluateBatch = function evaluateBatch(arg1) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010MethodDelegationPolicyEvaluateBatch',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'none',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            
            var handle1 = this[symbolRscHandle];
            if (!handle1 || (handleTable0[(handle1 << 1) + 1] & T_FLAG) === 0) {
              throw new TypeError('Resource error: Not a valid \"DelegationPolicy\" resource.');
            }
            var handle0 = handleTable0[(handle1 << 1) + 1] & ~T_FLAG;
            
            var vec48 = arg1;
            var len48 = vec48.length;
            var result48 = realloc0(0, 0, 8, len48 * 280);
            for (let i = 0; i < vec48.length; i++) {
              const e = vec48[i];
              const base = result48 + i * 280;var {from: v2_0, to: v2_1, task: v2_2, parentMandate: v2_3, requestedMandate: v2_4, chain: v2_5, state: v2_6, depthException: v2_7, actionMask: v2_8, registry: v2_9, now: v2_10 } = e;
              var {id: v3_0, trust: v3_1 } = v2_0;
              
              var encodeRes = _utf8AllocateAndEncode(v3_0, realloc0, memory0);
              var ptr4= encodeRes.ptr;
              var len4 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len4, true);
              dataView(memory0).setUint32(base + 0, ptr4, true);
              dataView(memory0).setInt16(base + 8, toUint16(v3_1), true);
              var {id: v5_0, trust: v5_1 } = v2_1;
              
              var encodeRes = _utf8AllocateAndEncode(v5_0, realloc0, memory0);
              var ptr6= encodeRes.ptr;
              var len6 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 16, len6, true);
              dataView(memory0).setUint32(base + 12, ptr6, true);
              dataView(memory0).setInt16(base + 20, toUint16(v5_1), true);
              var {id: v7_0, actionKind: v7_1, risk: v7_2, value: v7_3, counterparty: v7_4, completableLocally: v7_5 } = v2_2;
              
              var encodeRes = _utf8AllocateAndEncode(v7_0, realloc0, memory0);
              var ptr8= encodeRes.ptr;
              var len8 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 28, len8, true);
              dataView(memory0).setUint32(base + 24, ptr8, true);
              
              var encodeRes = _utf8AllocateAndEncode(v7_1, realloc0, memory0);
              var ptr9= encodeRes.ptr;
              var len9 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 36, len9, true);
              dataView(memory0).setUint32(base + 32, ptr9, true);
              var val10 = v7_2;
              let enum10;
              switch (val10) {
                case 'low': {
                  enum10 = 0;
                  break;
                }
                case 'medium': {
                  enum10 = 1;
                  break;
                }
                case 'high': {
                  enum10 = 2;
                  break;
                }
                case 'critical': {
                  enum10 = 3;
                  break;
                }
                default: {
                  if ((v7_2) instanceof Error) {
                    console.error(v7_2);
                  }
                  
                  throw new TypeError(`"${val10}" is not one of the cases of risk-level`);
                }
              }
              dataView(memory0).setInt8(base + 40, enum10, true);
              dataView(memory0).setBigInt64(base + 48, toUint64(v7_3), true);
              var variant12 = v7_4;
              if (variant12 === null || variant12=== undefined) {
                dataView(memory0).setInt8(base + 56, 0, true);
              } else {
                const e = variant12;
                dataView(memory0).setInt8(base + 56, 1, true);
                
                var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
                var ptr11= encodeRes.ptr;
                var len11 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 64, len11, true);
                dataView(memory0).setUint32(base + 60, ptr11, true);
              }
              dataView(memory0).setInt8(base + 68, v7_5 ? 1 : 0, true);
              var {valueCeiling: v13_0, actionKinds: v13_1, counterparties: v13_2, budgets: v13_3, remainingDepth: v13_4, expiresAt: v13_5 } = v2_3;
              dataView(memory0).setBigInt64(base + 72, toUint64(v13_0), true);
              var vec15 = v13_1;
              var len15 = vec15.length;
              var result15 = realloc0(0, 0, 4, len15 * 8);
              for (let i = 0; i < vec15.length; i++) {
                const e = vec15[i];
                const base = result15 + i * 8;
                var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
                var ptr14= encodeRes.ptr;
                var len14 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 4, len14, true);
                dataView(memory0).setUint32(base + 0, ptr14, true);
              }
              dataView(memory0).setUint32(base + 84, len15, true);
              dataView(memory0).setUint32(base + 80, result15, true);
              var vec17 = v13_2;
              var len17 = vec17.length;
              var result17 = realloc0(0, 0, 4, len17 * 8);
              for (let i = 0; i < vec17.length; i++) {
                const e = vec17[i];
                const base = result17 + i * 8;
                var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
                var ptr16= encodeRes.ptr;
                var len16 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 4, len16, true);
                dataView(memory0).setUint32(base + 0, ptr16, true);
              }
              dataView(memory0).setUint32(base + 92, len17, true);
              dataView(memory0).setUint32(base + 88, result17, true);
              var vec20 = v13_3;
              var len20 = vec20.length;
              var result20 = realloc0(0, 0, 8, len20 * 16);
              for (let i = 0; i < vec20.length; i++) {
                const e = vec20[i];
                const base = result20 + i * 16;var {unit: v18_0, amount: v18_1 } = e;
                var val19 = v18_0;
                let enum19;
                switch (val19) {
                  case 'usd-microcents': {
                    enum19 = 0;
                    break;
                  }
                  case 'tokens': {
                    enum19 = 1;
                    break;
                  }
                  case 'credits': {
                    enum19 = 2;
                    break;
                  }
                  case 'risk-points': {
                    enum19 = 3;
                    break;
                  }
                  default: {
                    if ((v18_0) instanceof Error) {
                      console.error(v18_0);
                    }
                    
                    throw new TypeError(`"${val19}" is not one of the cases of budget-unit`);
                  }
                }
                dataView(memory0).setInt8(base + 0, enum19, true);
                dataView(memory0).setBigInt64(base + 8, toUint64(v18_1), true);
              }
              dataView(memory0).setUint32(base + 100, len20, true);
              dataView(memory0).setUint32(base + 96, result20, true);
              dataView(memory0).setInt8(base + 104, toUint8(v13_4), true);
              dataView(memory0).setBigInt64(base + 112, toUint64(v13_5), true);
              var {valueCeiling: v21_0, actionKinds: v21_1, counterparties: v21_2, budgets: v21_3, remainingDepth: v21_4, expiresAt: v21_5 } = v2_4;
              dataView(memory0).setBigInt64(base + 120, toUint64(v21_0), true);
              var vec23 = v21_1;
              var len23 = vec23.length;
              var result23 = realloc0(0, 0, 4, len23 * 8);
              for (let i = 0; i < vec23.length; i++) {
                const e = vec23[i];
                const base = result23 + i * 8;
                var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
                var ptr22= encodeRes.ptr;
                var len22 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 4, len22, true);
                dataView(memory0).setUint32(base + 0, ptr22, true);
              }
              dataView(memory0).setUint32(base + 132, len23, true);
              dataView(memory0).setUint32(base + 128, result23, true);
              var vec25 = v21_2;
              var len25 = vec25.length;
              var result25 = realloc0(0, 0, 4, len25 * 8);
              for (let i = 0; i < vec25.length; i++) {
                const e = vec25[i];
                const base = result25 + i * 8;
                var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
                var ptr24= encodeRes.ptr;
                var len24 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 4, len24, true);
                dataView(memory0).setUint32(base + 0, ptr24, true);
              }
              dataView(memory0).setUint32(base + 140, len25, true);
              dataView(memory0).setUint32(base + 136, result25, true);
              var vec28 = v21_3;
              var len28 = vec28.length;
              var result28 = realloc0(0, 0, 8, len28 * 16);
              for (let i = 0; i < vec28.length; i++) {
                const e = vec28[i];
                const base = result28 + i * 16;var {unit: v26_0, amount: v26_1 } = e;
                var val27 = v26_0;
                let enum27;
                switch (val27) {
                  case 'usd-microcents': {
                    enum27 = 0;
                    break;
                  }
                  case 'tokens': {
                    enum27 = 1;
                    break;
                  }
                  case 'credits': {
                    enum27 = 2;
                    break;
                  }
                  case 'risk-points': {
                    enum27 = 3;
                    break;
                  }
                  default: {
                    if ((v26_0) instanceof Error) {
                      console.error(v26_0);
                    }
                    
                    throw new TypeError(`"${val27}" is not one of the cases of budget-unit`);
                  }
                }
                dataView(memory0).setInt8(base + 0, enum27, true);
                dataView(memory0).setBigInt64(base + 8, toUint64(v26_1), true);
              }
              dataView(memory0).setUint32(base + 148, len28, true);
              dataView(memory0).setUint32(base + 144, result28, true);
              dataView(memory0).setInt8(base + 152, toUint8(v21_4), true);
              dataView(memory0).setBigInt64(base + 160, toUint64(v21_5), true);
              var vec33 = v2_5;
              var len33 = vec33.length;
              var result33 = realloc0(0, 0, 8, len33 * 48);
              for (let i = 0; i < vec33.length; i++) {
                const e = vec33[i];
                const base = result33 + i * 48;var {from: v29_0, to: v29_1, depth: v29_2, alpha: v29_3, at: v29_4, reason: v29_5 } = e;
                
                var encodeRes = _utf8AllocateAndEncode(v29_0, realloc0, memory0);
                var ptr30= encodeRes.ptr;
                var len30 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 4, len30, true);
                dataView(memory0).setUint32(base + 0, ptr30, true);
                
                var encodeRes = _utf8AllocateAndEncode(v29_1, realloc0, memory0);
                var ptr31= encodeRes.ptr;
                var len31 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 12, len31, true);
                dataView(memory0).setUint32(base + 8, ptr31, true);
                dataView(memory0).setInt8(base + 16, toUint8(v29_2), true);
                dataView(memory0).setFloat64(base + 24, +v29_3, true);
                dataView(memory0).setBigInt64(base + 32, toUint64(v29_4), true);
                
                var encodeRes = _utf8AllocateAndEncode(v29_5, realloc0, memory0);
                var ptr32= encodeRes.ptr;
                var len32 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 44, len32, true);
                dataView(memory0).setUint32(base + 40, ptr32, true);
              }
              dataView(memory0).setUint32(base + 172, len33, true);
              dataView(memory0).setUint32(base + 168, result33, true);
              var val34 = v2_6;
              var len34 = val34.length;
              var ptr34 = realloc0(0, 0, 8, len34 * 8);
              
              let valData34;
              const valLenBytes34 = len34 * 8;
              if (Array.isArray(val34)) {
                // Regular array likely containing numbers, write values to memory
                let offset = 0;
                const dv34 = new DataView(memory0.buffer);
                for (const v of val34) {
                  _requireValidNumericPrimitive.bind(null, 'f64')(v);
                  dv34.setFloat64(ptr34+ offset, v, true);
                  offset += 8;
                }
              } else {
                // TypedArray / ArrayBuffer-like, direct copy
                valData34 = new Uint8Array(val34.buffer || val34, val34.byteOffset, valLenBytes34);
                const out34 = new Uint8Array(memory0.buffer, ptr34, valLenBytes34);
                out34.set(valData34);
              }
              
              dataView(memory0).setUint32(base + 180, len34, true);
              dataView(memory0).setUint32(base + 176, ptr34, true);
              var variant38 = v2_7;
              if (variant38 === null || variant38=== undefined) {
                dataView(memory0).setInt8(base + 184, 0, true);
              } else {
                const e = variant38;
                dataView(memory0).setInt8(base + 184, 1, true);
                var {approvedBy: v35_0, justification: v35_1, extraDepth: v35_2, expiresAt: v35_3 } = e;
                
                var encodeRes = _utf8AllocateAndEncode(v35_0, realloc0, memory0);
                var ptr36= encodeRes.ptr;
                var len36 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 196, len36, true);
                dataView(memory0).setUint32(base + 192, ptr36, true);
                
                var encodeRes = _utf8AllocateAndEncode(v35_1, realloc0, memory0);
                var ptr37= encodeRes.ptr;
                var len37 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 204, len37, true);
                dataView(memory0).setUint32(base + 200, ptr37, true);
                dataView(memory0).setInt8(base + 208, toUint8(v35_2), true);
                dataView(memory0).setBigInt64(base + 216, toUint64(v35_3), true);
              }
              var variant43 = v2_8;
              if (variant43 === null || variant43=== undefined) {
                dataView(memory0).setInt8(base + 224, 0, true);
              } else {
                const e = variant43;
                dataView(memory0).setInt8(base + 224, 1, true);
                var {toolsets: v39_0, cost: v39_1 } = e;
                var vec42 = v39_0;
                var len42 = vec42.length;
                var result42 = realloc0(0, 0, 8, len42 * 16);
                for (let i = 0; i < vec42.length; i++) {
                  const e = vec42[i];
                  const base = result42 + i * 16;var {toolset: v40_0, remaining: v40_1 } = e;
                  
                  var encodeRes = _utf8AllocateAndEncode(v40_0, realloc0, memory0);
                  var ptr41= encodeRes.ptr;
                  var len41 = encodeRes.len;
                  
                  dataView(memory0).setUint32(base + 4, len41, true);
                  dataView(memory0).setUint32(base + 0, ptr41, true);
                  dataView(memory0).setBigInt64(base + 8, toUint64(v40_1), true);
                }
                dataView(memory0).setUint32(base + 236, len42, true);
                dataView(memory0).setUint32(base + 232, result42, true);
                dataView(memory0).setBigInt64(base + 240, toUint64(v39_1), true);
              }
              var variant47 = v2_9;
              if (variant47 === null || variant47=== undefined) {
                dataView(memory0).setInt8(base + 248, 0, true);
              } else {
                const e = variant47;
                dataView(memory0).setInt8(base + 248, 1, true);
                var {delegatorRegistered: v44_0, delegateRegistered: v44_1, unregistered: v44_2, reviewer: v44_3, explicitDelegation: v44_4, delegateListed: v44_5 } = e;
                dataView(memory0).setInt8(base + 252, v44_0 ? 1 : 0, true);
                dataView(memory0).setInt8(base + 253, v44_1 ? 1 : 0, true);
                var val45 = v44_2;
                let enum45;
                switch (val45) {
                  case 'deny': {
                    enum45 = 0;
                    break;
                  }
                  case 'escalate': {
                    enum45 = 1;
                    break;
                  }
                  default: {
                    if ((v44_2) instanceof Error) {
                      console.error(v44_2);
                    }
                    
                    throw new TypeError(`"${val45}" is not one of the cases of unregistered-rule`);
                  }
                }
                dataView(memory0).setInt8(base + 254, enum45, true);
                
                var encodeRes = _utf8AllocateAndEncode(v44_3, realloc0, memory0);
                var ptr46= encodeRes.ptr;
                var len46 = encodeRes.len;
                
                dataView(memory0).setUint32(base + 260, len46, true);
                dataView(memory0).setUint32(base + 256, ptr46, true);
                dataView(memory0).setInt8(base + 264, v44_4 ? 1 : 0, true);
                dataView(memory0).setInt8(base + 265, v44_5 ? 1 : 0, true);
              }
              dataView(memory0).setBigInt64(base + 272, toUint64(v2_10), true);
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.evaluate-batch"][Instruction::CallWasm] enter', {
              funcName: '[method]delegation-policy.evaluate-batch',
              paramCount: 3,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010MethodDelegationPolicyEvaluateBatch(handle0, result48, len48),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            var len70 = dataView(memory0).getUint32(ret + 4, true);
            var base70 = dataView(memory0).getUint32(ret + 0, true);
            if (base70 % 8 !== 0) throw new TypeError(`list pointer [${base70}] is not aligned to 8`);
            var result70 = [];
            for (let i = 0; i < len70; i++) {
              const base = base70 + i * 120;
              let variant69;
              switch (dataView(memory0).getUint8(base + 0, true)) {
                case 0: {
                  var ptr49 = dataView(memory0).getUint32(base + 24, true);
                  var len49 = dataView(memory0).getUint32(base + 28, true);
                  var result49 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr49, len49));
                  let enum50;
                  switch (dataView(memory0).getUint8(base + 34, true)) {
                    case 0: {
                      enum50 = 't0';
                      break;
                    }
                    case 1: {
                      enum50 = 't1';
                      break;
                    }
                    case 2: {
                      enum50 = 't2';
                      break;
                    }
                    case 3: {
                      enum50 = 't3';
                      break;
                    }
                    case 4: {
                      enum50 = 't4';
                      break;
                    }
                    case 5: {
                      enum50 = 't5';
                      break;
                    }
                    case 6: {
                      enum50 = 't6';
                      break;
                    }
                    case 7: {
                      enum50 = 't7';
                      break;
                    }
                    default: {
                      throw new TypeError('invalid discriminant specified for TrustTier');
                    }
                  }
                  var len52 = dataView(memory0).getUint32(base + 52, true);
                  var base52 = dataView(memory0).getUint32(base + 48, true);
                  if (base52 % 4 !== 0) throw new TypeError(`list pointer [${base52}] is not aligned to 4`);
                  var result52 = [];
                  for (let i = 0; i < len52; i++) {
                    const base = base52 + i * 8;
                    var ptr51 = dataView(memory0).getUint32(base + 0, true);
                    var len51 = dataView(memory0).getUint32(base + 4, true);
                    var result51 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr51, len51));
                    result52.push(result51);
                  }
                  var len54 = dataView(memory0).getUint32(base + 60, true);
                  var base54 = dataView(memory0).getUint32(base + 56, true);
                  if (base54 % 4 !== 0) throw new TypeError(`list pointer [${base54}] is not aligned to 4`);
                  var result54 = [];
                  for (let i = 0; i < len54; i++) {
                    const base = base54 + i * 8;
                    var ptr53 = dataView(memory0).getUint32(base + 0, true);
                    var len53 = dataView(memory0).getUint32(base + 4, true);
                    var result53 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr53, len53));
                    result54.push(result53);
                  }
                  var len56 = dataView(memory0).getUint32(base + 68, true);
                  var base56 = dataView(memory0).getUint32(base + 64, true);
                  if (base56 % 8 !== 0) throw new TypeError(`list pointer [${base56}] is not aligned to 8`);
                  var result56 = [];
                  for (let i = 0; i < len56; i++) {
                    const base = base56 + i * 16;
                    let enum55;
                    switch (dataView(memory0).getUint8(base + 0, true)) {
                      case 0: {
                        enum55 = 'usd-microcents';
                        break;
                      }
                      case 1: {
                        enum55 = 'tokens';
                        break;
                      }
                      case 2: {
                        enum55 = 'credits';
                        break;
                      }
                      case 3: {
                        enum55 = 'risk-points';
                        break;
                      }
                      default: {
                        throw new TypeError('invalid discriminant specified for BudgetUnit');
                      }
                    }
                    result56.push({
                      unit: enum55,
                      amount: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(base + 8, true))),
                    });
                  }
                  var len58 = dataView(memory0).getUint32(base + 96, true);
                  var base58 = dataView(memory0).getUint32(base + 92, true);
                  if (base58 % 8 !== 0) throw new TypeError(`list pointer [${base58}] is not aligned to 8`);
                  var result58 = [];
                  for (let i = 0; i < len58; i++) {
                    const base = base58 + i * 16;
                    var ptr57 = dataView(memory0).getUint32(base + 0, true);
                    var len57 = dataView(memory0).getUint32(base + 4, true);
                    var result57 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr57, len57));
                    result58.push({
                      agent: result57,
                      weight: dataView(memory0).getFloat64(base + 8, true),
                    });
                  }
                  var len61 = dataView(memory0).getUint32(base + 116, true);
                  var base61 = dataView(memory0).getUint32(base + 112, true);
                  if (base61 % 4 !== 0) throw new TypeError(`list pointer [${base61}] is not aligned to 4`);
                  var result61 = [];
                  for (let i = 0; i < len61; i++) {
                    const base = base61 + i * 20;
                    var ptr59 = dataView(memory0).getUint32(base + 4, true);
                    var len59 = dataView(memory0).getUint32(base + 8, true);
                    var result59 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr59, len59));
                    var ptr60 = dataView(memory0).getUint32(base + 12, true);
                    var len60 = dataView(memory0).getUint32(base + 16, true);
                    var result60 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr60, len60));
                    result61.push({
                      code: clampGuest(dataView(memory0).getUint16(base + 0, true), 0, 65535),
                      name: result59,
                      message: result60,
                    });
                  }
                  variant69= {
                    tag: 'allow',
                    val: {
                      alpha: dataView(memory0).getFloat64(base + 8, true),
                      lambda: dataView(memory0).getFloat64(base + 16, true),
                      subAgent: result49,
                      effectiveTrust: clampGuest(dataView(memory0).getUint16(base + 32, true), 0, 65535),
                      effectiveTier: enum50,
                      childMandate: {
                        valueCeiling: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(base + 40, true))),
                        actionKinds: result52,
                        counterparties: result54,
                        budgets: result56,
                        remainingDepth: clampGuest(dataView(memory0).getUint8(base + 72, true), 0, 255),
                        expiresAt: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(base + 80, true))),
                      },
                      depth: clampGuest(dataView(memory0).getUint8(base + 88, true), 0, 255),
                      remainingDepth: clampGuest(dataView(memory0).getUint8(base + 89, true), 0, 255),
                      maxDepth: clampGuest(dataView(memory0).getUint8(base + 90, true), 0, 255),
                      accountability: result58,
                      accountabilityCeiling: dataView(memory0).getFloat64(base + 104, true),
                      warnings: result61,
                    }
                  };
                  break;
                }
                case 1: {
                  let variant64;
                  switch (dataView(memory0).getUint8(base + 8, true)) {
                    case 0: {
                      var ptr62 = dataView(memory0).getUint32(base + 12, true);
                      var len62 = dataView(memory0).getUint32(base + 16, true);
                      var result62 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr62, len62));
                      variant64= {
                        tag: 'human',
                        val: result62
                      };
                      break;
                    }
                    case 1: {
                      var ptr63 = dataView(memory0).getUint32(base + 12, true);
                      var len63 = dataView(memory0).getUint32(base + 16, true);
                      var result63 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr63, len63));
                      variant64= {
                        tag: 'agent',
                        val: result63
                      };
                      break;
                    }
                    default: {
                      throw new TypeError('invalid variant discriminant for EscalationTarget');
                    }
                  }
                  var ptr65 = dataView(memory0).getUint32(base + 24, true);
                  var len65 = dataView(memory0).getUint32(base + 28, true);
                  var result65 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr65, len65));
                  var ptr66 = dataView(memory0).getUint32(base + 32, true);
                  var len66 = dataView(memory0).getUint32(base + 36, true);
                  var result66 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr66, len66));
                  variant69= {
                    tag: 'escalate',
                    val: {
                      target: variant64,
                      code: clampGuest(dataView(memory0).getUint16(base + 20, true), 0, 65535),
                      name: result65,
                      reason: result66,
                    }
                  };
                  break;
                }
                case 2: {
                  var ptr67 = dataView(memory0).getUint32(base + 12, true);
                  var len67 = dataView(memory0).getUint32(base + 16, true);
                  var result67 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr67, len67));
                  var ptr68 = dataView(memory0).getUint32(base + 20, true);
                  var len68 = dataView(memory0).getUint32(base + 24, true);
                  var result68 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr68, len68));
                  variant69= {
                    tag: 'deny',
                    val: {
                      code: clampGuest(dataView(memory0).getUint16(base + 8, true), 0, 65535),
                      name: result67,
                      message: result68,
                    }
                  };
                  break;
                }
                default: {
                  throw new TypeError('invalid variant discriminant for Verdict');
                }
              }
              result70.push(variant69);
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.evaluate-batch"][Instruction::Return]', {
              funcName: '[method]delegation-policy.evaluate-batch',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            task.resolve([result70]);
            const retCopy = result70;
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn2(ret);
            cstate.mayLeave = true;
            task.exit();
            return retCopy;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010MethodDelegationPolicyEvaluateEncoded;
    
    DelegationPolicy.prototype.evaluateEncoded = function evaluateEncoded(arg1) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010MethodDelegationPolicyEvaluateEncoded',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'none',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            
            var handle1 = this[symbolRscHandle];
            if (!handle1 || (handleTable0[(handle1 << 1) + 1] & T_FLAG) === 0) {
              throw new TypeError('Resource error: Not a valid \"DelegationPolicy\" resource.');
            }
            var handle0 = handleTable0[(handle1 << 1) + 1] & ~T_FLAG;
            
            var val2 = arg1;
            var len2 = Array.isArray(val2) ? val2.length : val2.byteLength;
            var ptr2 = realloc0(0, 0, 1, len2 * 1);
            
            let valData2;
            const valLenBytes2 = len2 * 1;
            if (Array.isArray(val2)) {
              // Regular array likely containing numbers, write values to memory
              let offset = 0;
              const dv2 = new DataView(memory0.buffer);
              for (const v of val2) {
                _requireValidNumericPrimitive.bind(null, 'u8')(v);
                dv2.setUint8(ptr2+ offset, v, true);
                offset += 1;
              }
            } else {
              // TypedArray / ArrayBuffer-like, direct copy
              valData2 = new Uint8Array(val2.buffer || val2, val2.byteOffset, valLenBytes2);
              const out2 = new Uint8Array(memory0.buffer, ptr2, valLenBytes2);
              out2.set(valData2);
            }
            
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.evaluate-encoded"][Instruction::CallWasm] enter', {
              funcName: '[method]delegation-policy.evaluate-encoded',
              paramCount: 3,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010MethodDelegationPolicyEvaluateEncoded(handle0, ptr2, len2),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            var ptr3 = dataView(memory0).getUint32(ret + 0, true);
            var len3 = dataView(memory0).getUint32(ret + 4, true);
            if (ptr3 % 1 !== 0) throw new TypeError(`list pointer [${ptr3}] is not aligned to 1`);
            var result3 = new Uint8Array(memory0.buffer.slice(ptr3, ptr3 + len3 * 1));
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.evaluate-encoded"][Instruction::Return]', {
              funcName: '[method]delegation-policy.evaluate-encoded',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            task.resolve([result3]);
            const retCopy = result3;
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn3(ret);
            cstate.mayLeave = true;
            task.exit();
            return retCopy;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010MethodDelegationPolicyEvaluateJson;
    
    DelegationPolicy.prototype.evaluateJson = function evaluateJson(arg1) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010MethodDelegationPolicyEvaluateJson',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'none',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            
            var handle1 = this[symbolRscHandle];
            if (!handle1 || (handleTable0[(handle1 << 1) + 1] & T_FLAG) === 0) {
              throw new TypeError('Resource error: Not a valid \"DelegationPolicy\" resource.');
            }
            var handle0 = handleTable0[(handle1 << 1) + 1] & ~T_FLAG;
            
            
            var encodeRes = _utf8AllocateAndEncode(arg1, realloc0, memory0);
            var ptr2= encodeRes.ptr;
            var len2 = encodeRes.len;
            
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.evaluate-json"][Instruction::CallWasm] enter', {
              funcName: '[method]delegation-policy.evaluate-json',
              paramCount: 3,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010MethodDelegationPolicyEvaluateJson(handle0, ptr2, len2),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            var ptr3 = dataView(memory0).getUint32(ret + 0, true);
            var len3 = dataView(memory0).getUint32(ret + 4, true);
            var result3 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr3, len3));
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.evaluate-json"][Instruction::Return]', {
              funcName: '[method]delegation-policy.evaluate-json',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            task.resolve([result3]);
            const retCopy = result3;
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn3(ret);
            cstate.mayLeave = true;
            task.exit();
            return retCopy;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010MethodDelegationPolicyNarrow;
    
    DelegationPolicy.prototype.narrow = function narrow(arg1, arg2) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010MethodDelegationPolicyNarrow',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'none',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            var ptr0 = realloc0(0, 0, 8, 104);
            
            var handle2 = this[symbolRscHandle];
            if (!handle2 || (handleTable0[(handle2 << 1) + 1] & T_FLAG) === 0) {
              throw new TypeError('Resource error: Not a valid \"DelegationPolicy\" resource.');
            }
            var handle1 = handleTable0[(handle2 << 1) + 1] & ~T_FLAG;
            
            dataView(memory0).setInt32(ptr0 + 0, handle1, true);
            var {valueCeiling: v3_0, actionKinds: v3_1, counterparties: v3_2, budgets: v3_3, remainingDepth: v3_4, expiresAt: v3_5 } = arg1;
            dataView(memory0).setBigInt64(ptr0 + 8, toUint64(v3_0), true);
            var vec5 = v3_1;
            var len5 = vec5.length;
            var result5 = realloc0(0, 0, 4, len5 * 8);
            for (let i = 0; i < vec5.length; i++) {
              const e = vec5[i];
              const base = result5 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr4= encodeRes.ptr;
              var len4 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len4, true);
              dataView(memory0).setUint32(base + 0, ptr4, true);
            }
            dataView(memory0).setUint32(ptr0 + 20, len5, true);
            dataView(memory0).setUint32(ptr0 + 16, result5, true);
            var vec7 = v3_2;
            var len7 = vec7.length;
            var result7 = realloc0(0, 0, 4, len7 * 8);
            for (let i = 0; i < vec7.length; i++) {
              const e = vec7[i];
              const base = result7 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr6= encodeRes.ptr;
              var len6 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len6, true);
              dataView(memory0).setUint32(base + 0, ptr6, true);
            }
            dataView(memory0).setUint32(ptr0 + 28, len7, true);
            dataView(memory0).setUint32(ptr0 + 24, result7, true);
            var vec10 = v3_3;
            var len10 = vec10.length;
            var result10 = realloc0(0, 0, 8, len10 * 16);
            for (let i = 0; i < vec10.length; i++) {
              const e = vec10[i];
              const base = result10 + i * 16;var {unit: v8_0, amount: v8_1 } = e;
              var val9 = v8_0;
              let enum9;
              switch (val9) {
                case 'usd-microcents': {
                  enum9 = 0;
                  break;
                }
                case 'tokens': {
                  enum9 = 1;
                  break;
                }
                case 'credits': {
                  enum9 = 2;
                  break;
                }
                case 'risk-points': {
                  enum9 = 3;
                  break;
                }
                default: {
                  if ((v8_0) instanceof Error) {
                    console.error(v8_0);
                  }
                  
                  throw new TypeError(`"${val9}" is not one of the cases of budget-unit`);
                }
              }
              dataView(memory0).setInt8(base + 0, enum9, true);
              dataView(memory0).setBigInt64(base + 8, toUint64(v8_1), true);
            }
            dataView(memory0).setUint32(ptr0 + 36, len10, true);
            dataView(memory0).setUint32(ptr0 + 32, result10, true);
            dataView(memory0).setInt8(ptr0 + 40, toUint8(v3_4), true);
            dataView(memory0).setBigInt64(ptr0 + 48, toUint64(v3_5), true);
            var {valueCeiling: v11_0, actionKinds: v11_1, counterparties: v11_2, budgets: v11_3, remainingDepth: v11_4, expiresAt: v11_5 } = arg2;
            dataView(memory0).setBigInt64(ptr0 + 56, toUint64(v11_0), true);
            var vec13 = v11_1;
            var len13 = vec13.length;
            var result13 = realloc0(0, 0, 4, len13 * 8);
            for (let i = 0; i < vec13.length; i++) {
              const e = vec13[i];
              const base = result13 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr12= encodeRes.ptr;
              var len12 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len12, true);
              dataView(memory0).setUint32(base + 0, ptr12, true);
            }
            dataView(memory0).setUint32(ptr0 + 68, len13, true);
            dataView(memory0).setUint32(ptr0 + 64, result13, true);
            var vec15 = v11_2;
            var len15 = vec15.length;
            var result15 = realloc0(0, 0, 4, len15 * 8);
            for (let i = 0; i < vec15.length; i++) {
              const e = vec15[i];
              const base = result15 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr14= encodeRes.ptr;
              var len14 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len14, true);
              dataView(memory0).setUint32(base + 0, ptr14, true);
            }
            dataView(memory0).setUint32(ptr0 + 76, len15, true);
            dataView(memory0).setUint32(ptr0 + 72, result15, true);
            var vec18 = v11_3;
            var len18 = vec18.length;
            var result18 = realloc0(0, 0, 8, len18 * 16);
            for (let i = 0; i < vec18.length; i++) {
              const e = vec18[i];
              const base = result18 + i * 16;var {unit: v16_0, amount: v16_1 } = e;
              var val17 = v16_0;
              let enum17;
              switch (val17) {
                case 'usd-microcents': {
                  enum17 = 0;
                  break;
                }
                case 'tokens': {
                  enum17 = 1;
                  break;
                }
                case 'credits': {
                  enum17 = 2;
                  break;
                }
                case 'risk-points': {
                  enum17 = 3;
                  break;
                }
                default: {
                  if ((v16_0) instanceof Error) {
                    console.error(v16_0);
                  }
                  
                  throw new TypeError(`"${val17}" is not one of the cases of budget-unit`);
                }
              }
              dataView(memory0).setInt8(base + 0, enum17, true);
              dataView(memory0).setBigInt64(base + 8, toUint64(v16_1), true);
            }
            dataView(memory0).setUint32(ptr0 + 84, len18, true);
            dataView(memory0).setUint32(ptr0 + 80, result18, true);
            dataView(memory0).setInt8(ptr0 + 88, toUint8(v11_4), true);
            dataView(memory0).setBigInt64(ptr0 + 96, toUint64(v11_5), true);
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.narrow"][Instruction::CallWasm] enter', {
              funcName: '[method]delegation-policy.narrow',
              paramCount: 1,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010MethodDelegationPolicyNarrow(ptr0),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            var len20 = dataView(memory0).getUint32(ret + 12, true);
            var base20 = dataView(memory0).getUint32(ret + 8, true);
            if (base20 % 4 !== 0) throw new TypeError(`list pointer [${base20}] is not aligned to 4`);
            var result20 = [];
            for (let i = 0; i < len20; i++) {
              const base = base20 + i * 8;
              var ptr19 = dataView(memory0).getUint32(base + 0, true);
              var len19 = dataView(memory0).getUint32(base + 4, true);
              var result19 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr19, len19));
              result20.push(result19);
            }
            var len22 = dataView(memory0).getUint32(ret + 20, true);
            var base22 = dataView(memory0).getUint32(ret + 16, true);
            if (base22 % 4 !== 0) throw new TypeError(`list pointer [${base22}] is not aligned to 4`);
            var result22 = [];
            for (let i = 0; i < len22; i++) {
              const base = base22 + i * 8;
              var ptr21 = dataView(memory0).getUint32(base + 0, true);
              var len21 = dataView(memory0).getUint32(base + 4, true);
              var result21 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr21, len21));
              result22.push(result21);
            }
            var len24 = dataView(memory0).getUint32(ret + 28, true);
            var base24 = dataView(memory0).getUint32(ret + 24, true);
            if (base24 % 8 !== 0) throw new TypeError(`list pointer [${base24}] is not aligned to 8`);
            var result24 = [];
            for (let i = 0; i < len24; i++) {
              const base = base24 + i * 16;
              let enum23;
              switch (dataView(memory0).getUint8(base + 0, true)) {
                case 0: {
                  enum23 = 'usd-microcents';
                  break;
                }
                case 1: {
                  enum23 = 'tokens';
                  break;
                }
                case 2: {
                  enum23 = 'credits';
                  break;
                }
                case 3: {
                  enum23 = 'risk-points';
                  break;
                }
                default: {
                  throw new TypeError('invalid discriminant specified for BudgetUnit');
                }
              }
              result24.push({
                unit: enum23,
                amount: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(base + 8, true))),
              });
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.narrow"][Instruction::Return]', {
              funcName: '[method]delegation-policy.narrow',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            task.resolve([{
              valueCeiling: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(ret + 0, true))),
              actionKinds: result20,
              counterparties: result22,
              budgets: result24,
              remainingDepth: clampGuest(dataView(memory0).getUint8(ret + 32, true), 0, 255),
              expiresAt: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(ret + 40, true))),
            }]);
            const retCopy = {
              valueCeiling: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(ret + 0, true))),
              actionKinds: result20,
              counterparties: result22,
              budgets: result24,
              remainingDepth: clampGuest(dataView(memory0).getUint8(ret + 32, true), 0, 255),
              expiresAt: BigInt.asUintN(64, BigInt(dataView(memory0).getBigInt64(ret + 40, true))),
            };
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn4(ret);
            cstate.mayLeave = true;
            task.exit();
            return retCopy;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010MethodDelegationPolicyTrustDeltas;
    
    DelegationPolicy.prototype.trustDeltas = function trustDeltas(arg1, arg2) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010MethodDelegationPolicyTrustDeltas',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'none',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            
            var handle1 = this[symbolRscHandle];
            if (!handle1 || (handleTable0[(handle1 << 1) + 1] & T_FLAG) === 0) {
              throw new TypeError('Resource error: Not a valid \"DelegationPolicy\" resource.');
            }
            var handle0 = handleTable0[(handle1 << 1) + 1] & ~T_FLAG;
            
            var vec3 = arg1;
            var len3 = vec3.length;
            var result3 = realloc0(0, 0, 4, len3 * 8);
            for (let i = 0; i < vec3.length; i++) {
              const e = vec3[i];
              const base = result3 + i * 8;
              var encodeRes = _utf8AllocateAndEncode(e, realloc0, memory0);
              var ptr2= encodeRes.ptr;
              var len2 = encodeRes.len;
              
              dataView(memory0).setUint32(base + 4, len2, true);
              dataView(memory0).setUint32(base + 0, ptr2, true);
            }
            var variant4 = arg2;
            let variant4_0;
            let variant4_1;
            switch (variant4.tag) {
              case 'success': {
                const e = variant4.val;
                variant4_0 = 0;
                variant4_1 = +e;
                break;
              }
              case 'failure': {
                const e = variant4.val;
                variant4_0 = 1;
                variant4_1 = +e;
                break;
              }
              default: {
                throw new TypeError(`invalid variant tag value \`${JSON.stringify(variant4.tag)}\` (received \`${variant4}\`) specified for \`Outcome\``);
              }
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.trust-deltas"][Instruction::CallWasm] enter', {
              funcName: '[method]delegation-policy.trust-deltas',
              paramCount: 5,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010MethodDelegationPolicyTrustDeltas(handle0, result3, len3, variant4_0, variant4_1),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            var len6 = dataView(memory0).getUint32(ret + 4, true);
            var base6 = dataView(memory0).getUint32(ret + 0, true);
            if (base6 % 8 !== 0) throw new TypeError(`list pointer [${base6}] is not aligned to 8`);
            var result6 = [];
            for (let i = 0; i < len6; i++) {
              const base = base6 + i * 16;
              var ptr5 = dataView(memory0).getUint32(base + 0, true);
              var len5 = dataView(memory0).getUint32(base + 4, true);
              var result5 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr5, len5));
              result6.push({
                agent: result5,
                delta: dataView(memory0).getFloat64(base + 8, true),
              });
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.trust-deltas"][Instruction::Return]', {
              funcName: '[method]delegation-policy.trust-deltas',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            task.resolve([result6]);
            const retCopy = result6;
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn5(ret);
            cstate.mayLeave = true;
            task.exit();
            return retCopy;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010MethodDelegationPolicyInfo;
    
    DelegationPolicy.prototype.info = function info() {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010MethodDelegationPolicyInfo',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'none',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            
            var handle1 = this[symbolRscHandle];
            if (!handle1 || (handleTable0[(handle1 << 1) + 1] & T_FLAG) === 0) {
              throw new TypeError('Resource error: Not a valid \"DelegationPolicy\" resource.');
            }
            var handle0 = handleTable0[(handle1 << 1) + 1] & ~T_FLAG;
            
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.info"][Instruction::CallWasm] enter', {
              funcName: '[method]delegation-policy.info',
              paramCount: 1,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010MethodDelegationPolicyInfo(handle0),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            var ptr2 = dataView(memory0).getUint32(ret + 0, true);
            var len2 = dataView(memory0).getUint32(ret + 4, true);
            var result2 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr2, len2));
            var ptr3 = dataView(memory0).getUint32(ret + 8, true);
            var len3 = dataView(memory0).getUint32(ret + 12, true);
            var result3 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr3, len3));
            var ptr4 = dataView(memory0).getUint32(ret + 16, true);
            var len4 = dataView(memory0).getUint32(ret + 20, true);
            var result4 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr4, len4));
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="[method]delegation-policy.info"][Instruction::Return]', {
              funcName: '[method]delegation-policy.info',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            task.resolve([{
              name: result2,
              version: result3,
              configDigest: result4,
              maxDepth: clampGuest(dataView(memory0).getUint8(ret + 24, true), 0, 255),
              wireVersion: dataView(memory0).getInt32(ret + 28, true) >>> 0,
            }]);
            const retCopy = {
              name: result2,
              version: result3,
              configDigest: result4,
              maxDepth: clampGuest(dataView(memory0).getUint8(ret + 24, true), 0, 255),
              wireVersion: dataView(memory0).getInt32(ret + 28, true) >>> 0,
            };
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn6(ret);
            cstate.mayLeave = true;
            task.exit();
            return retCopy;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    };
    let policy010CheckVerdict;
    
    function checkVerdict(arg0, arg1) {
      
      const hostProvided = false;
      getOrCreateAsyncState(0).throwIfTrapped();
      
      const [task, _wasm_call_currentTaskID] = createNewCurrentTask({
        componentIdx: 0,
        isAsync: false,
        isManualAsync: false,
        preserveFutureResult: false,
        entryFnName: 'policy010CheckVerdict',
        getCallbackFn: () => null,
        callbackFnName: null,
        errHandling: 'throw-result-err',
        callingWasmExport: true,
      });
      task.setCalleeIsAsync(false);
      
      const started = task.enterSync();
      CURRENT_TASK_MAY_BLOCK.value = task.mayBlock() ? 1 : 0;
      
      if (0!== null) {
        task.setReturnMemoryIdx(0);
        task.setReturnMemory((() => memory0)());
      }
      
      
      return _withGlobalCurrentTaskMeta({
        taskID: task.id(),
        componentIdx: task.componentIdx(),
        fn: () => {
          try {
            
            
            var encodeRes = _utf8AllocateAndEncode(arg0, realloc0, memory0);
            var ptr0= encodeRes.ptr;
            var len0 = encodeRes.len;
            
            
            var encodeRes = _utf8AllocateAndEncode(arg1, realloc0, memory0);
            var ptr1= encodeRes.ptr;
            var len1 = encodeRes.len;
            
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="check-verdict"][Instruction::CallWasm] enter', {
              funcName: 'check-verdict',
              paramCount: 4,
              async: false,
              postReturn: true,
            });
            
            let ret;
            
            try {
              ret =  _withGlobalCurrentTaskMeta({
                taskID: task.id(),
                componentIdx: task.componentIdx(),
                fn: () => policy010CheckVerdict(ptr0, len0, ptr1, len1),
              });
            } catch (err) {
              
              _debugLog('[Instruction::CallWasm] error during sync call', {
                taskID: task.id(),
                err,
              });
              getOrCreateAsyncState(0).markTrapped(err);
              task.setErrored(err);
              task.reject(err);
              task.exit();
              throw err;
              
            }
            
            let variant3;
            switch (dataView(memory0).getUint8(ret + 0, true)) {
              case 0: {
                variant3= {
                  tag: 'ok',
                  val: undefined
                };
                break;
              }
              case 1: {
                var ptr2 = dataView(memory0).getUint32(ret + 4, true);
                var len2 = dataView(memory0).getUint32(ret + 8, true);
                var result2 = TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr2, len2));
                variant3= {
                  tag: 'err',
                  val: result2
                };
                break;
              }
              default: {
                throw new TypeError('invalid variant discriminant for expected');
              }
            }
            _debugLog('[iface="sbd:delegation/policy@0.1.0", function="check-verdict"][Instruction::Return]', {
              funcName: 'check-verdict',
              paramCount: 1,
              async: false,
              postReturn: true
            });
            const retCopy = variant3;
            task.resolve([retCopy.val]);
            
            let cstate = getOrCreateAsyncState(0);
            cstate.mayLeave = false;
            postReturn0(ret);
            cstate.mayLeave = true;
            task.exit();
            
            
            
            if (typeof retCopy === 'object' && retCopy.tag === 'err') {
              throw new ComponentError(retCopy.val);
            }
            return retCopy.val;
            
            
          } catch (err) {
            if (!task.isResolvedState()) {
              task.setErrored(err);
              task.reject(err);
            }
            if (!task.isExited()) { task.exit({ skipExclusiveLockCheck: true }); }
            throw err;
          }
        },
      });
      
    }
    const trampoline0 = rscTableCreateOwn.bind(null, handleTable0);
    function trampoline1(handle) {
      const handleEntry = rscTableRemove(handleTable0, handle);
      if (handleEntry.own) {
        exports0['0'](handleEntry.rep);
      }
    }
    Promise.all([module0, module1, module2]).catch(() => {});
    ({ exports: exports0 } = yield instantiateCore(yield module1));
    ({ exports: exports1 } = yield instantiateCore(yield module0, {
      '[export]sbd:delegation/policy@0.1.0': {
        '[resource-drop]delegation-policy': Object.assign(_guardMayLeave(0, trampoline1), { _jcoMaySuspend: false }),
        '[resource-new]delegation-policy': Object.assign(_guardMayLeave(0, trampoline0), { _jcoMaySuspend: false }),
      },
    }));
    ({ exports: exports2 } = yield instantiateCore(yield module2, {
      '': {
        $imports: exports0.$imports,
        '0': Object.assign(exports1['sbd:delegation/policy@0.1.0#[dtor]delegation-policy'], { _jcoMaySuspend: false }),
      },
    }));
    memory0 = exports1.memory;
    realloc0 = exports1.cabi_realloc;
    
    try {
      realloc0Async = WebAssembly.promising(exports1.cabi_realloc);
    } catch(err) {
      realloc0Async = exports1.cabi_realloc;
    }
    
    postReturn0 = exports1['cabi_post_sbd:delegation/policy@0.1.0#[static]delegation-policy.create'];
    
    try {
      postReturn0Async = WebAssembly.promising(exports1['cabi_post_sbd:delegation/policy@0.1.0#[static]delegation-policy.create']);
    } catch(err) {
      postReturn0Async = exports1['cabi_post_sbd:delegation/policy@0.1.0#[static]delegation-policy.create'];
    }
    
    postReturn1 = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate'];
    
    try {
      postReturn1Async = WebAssembly.promising(exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate']);
    } catch(err) {
      postReturn1Async = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate'];
    }
    
    postReturn2 = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-batch'];
    
    try {
      postReturn2Async = WebAssembly.promising(exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-batch']);
    } catch(err) {
      postReturn2Async = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-batch'];
    }
    
    postReturn3 = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-encoded'];
    
    try {
      postReturn3Async = WebAssembly.promising(exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-encoded']);
    } catch(err) {
      postReturn3Async = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-encoded'];
    }
    
    postReturn4 = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.narrow'];
    
    try {
      postReturn4Async = WebAssembly.promising(exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.narrow']);
    } catch(err) {
      postReturn4Async = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.narrow'];
    }
    
    postReturn5 = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.trust-deltas'];
    
    try {
      postReturn5Async = WebAssembly.promising(exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.trust-deltas']);
    } catch(err) {
      postReturn5Async = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.trust-deltas'];
    }
    
    postReturn6 = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.info'];
    
    try {
      postReturn6Async = WebAssembly.promising(exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.info']);
    } catch(err) {
      postReturn6Async = exports1['cabi_post_sbd:delegation/policy@0.1.0#[method]delegation-policy.info'];
    }
    
    policy010StaticDelegationPolicyCreate = exports1['sbd:delegation/policy@0.1.0#[static]delegation-policy.create'];
    policy010StaticDelegationPolicyCreateFromText = exports1['sbd:delegation/policy@0.1.0#[static]delegation-policy.create-from-text'];
    policy010MethodDelegationPolicyEvaluate = exports1['sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate'];
    policy010MethodDelegationPolicyEvaluateBatch = exports1['sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-batch'];
    policy010MethodDelegationPolicyEvaluateEncoded = exports1['sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-encoded'];
    policy010MethodDelegationPolicyEvaluateJson = exports1['sbd:delegation/policy@0.1.0#[method]delegation-policy.evaluate-json'];
    policy010MethodDelegationPolicyNarrow = exports1['sbd:delegation/policy@0.1.0#[method]delegation-policy.narrow'];
    policy010MethodDelegationPolicyTrustDeltas = exports1['sbd:delegation/policy@0.1.0#[method]delegation-policy.trust-deltas'];
    policy010MethodDelegationPolicyInfo = exports1['sbd:delegation/policy@0.1.0#[method]delegation-policy.info'];
    policy010CheckVerdict = exports1['sbd:delegation/policy@0.1.0#check-verdict'];
    const policy010 = {
      DelegationPolicy: DelegationPolicy,
      checkVerdict: checkVerdict,
      
    };
    
    return { policy: policy010, 'sbd:delegation/policy@0.1.0': policy010,  };
  })();
  let promise, resolve, reject;
  function normalizeInstantiationError(e) {
    // Native JSPI rejects a suspending import called from a
    // core start function before entering its JS wrapper.
    // At component instantiation time that always means the
    // implicit synchronous task attempted to block.
    if (typeof WebAssembly.SuspendError === 'function' && e instanceof WebAssembly.SuspendError) {
      return new WebAssembly.RuntimeError('cannot block a synchronous task before returning');
    }
    return e;
  }
  function runNext(value) {
    try {
      let done;
      do {
        ({ value, done } = gen.next(value));
      } while (!(value instanceof Promise) && !done);
      if (done) {
        if (resolve) return resolve(value);
        else return value;
      }
      if (!promise) promise = new Promise((_resolve, _reject) => (resolve = _resolve, reject= _reject));
      value.then(nextVal => done ? resolve() : runNext(nextVal), e => reject(normalizeInstantiationError(e)));
    }
    catch (e) {
      e = normalizeInstantiationError(e);
      if (reject) reject(e);
      else throw e;
    }
  }
  const maybeSyncReturn = runNext(null);
  return promise || maybeSyncReturn;
};

export const _util = {
  
}

