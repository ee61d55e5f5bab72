/*
 * The SDK's hot path in C: the per-call work of ``@step`` on a plain (sync, non-generator)
 * function without ``key=``, and the storage of a ``Step``.
 *
 * Optional. ``xray/sdk/_step.py`` holds the same logic in Python and uses it when this
 * module is not built (no compiler at install time) or ``XRAY_SDK_PURE_PYTHON=1`` is set.
 * Only the common case lives here: a call inside a recording run or step. Everything else
 * (X-Ray off, no run yet, an implicit run to open, an unsampled run) is handed to the
 * Python wrapper, so the two paths cannot disagree on the rare cases.
 *
 * Why C at all: in Python, building the step object, the context switch and the
 * hand-off cost several times a minimal recorder (bench/sdk_overhead.py; figures in
 * bench/README.md). Here the call passes its arguments through without repacking them
 * (vectorcall), the step is filled field by field, and the context variable is switched
 * by the C API.
 *
 * Each function below names, in its comment, the Python function it mirrors; the Python
 * one is the definition, and tests/sdk/test_speedups.py records one pipeline on both
 * paths and compares every wire field. Step times come from time.perf_counter_ns()'s
 * own clock (clock_ns), the clock _run.py times the run with.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* -- Step storage ------------------------------------------------------------------ */

/* The most items of a result a step keeps inline (the preview shows PREVIEW_ITEMS). */
#define HEAD_MAX 16

/* A step's fields. Python reads and writes them under the names of the pure-Python
 * __slots__ (``_step._StepFields``). Three are stored in a cheaper form when the fast path
 * fills them, and turned into the Python value on first read (by the sender thread,
 * usually), so a recorded call allocates as little as it can:
 *   _args   - a single positional argument is kept as is (``arg0``), not in a tuple;
 *   _id     - the id's counter and the process prefix as two 64-bit halves;
 *   _result - a list longer than the preview as its first items inline (``head``) and
 *             its length, read back as the ``(CUT, head, total)`` tuple _step.py makes.
 * _t0 and _t1 are plain 64-bit integers. */
typedef struct {
    PyObject_HEAD
    PyObject *args;
    PyObject *arg0;
    PyObject *id;
    unsigned long long id_hi, id_lo;
    PyObject *in;
    PyObject *kwargs;
    PyObject *out;
    PyObject *result;
    Py_ssize_t head_n, total;
    PyObject *head[HEAD_MAX];
    PyObject *spec;
    PyObject *status;
    long long t0, t1;
    PyObject *x;
    PyObject *parent;
    PyObject *run;
    PyObject *seq;
} StepFields;

static PyObject *cut_marker; /* _step.CUT */

#define STEP_FIELD(name, member) \
    {name, T_OBJECT_EX, offsetof(StepFields, member), 0, NULL}

static PyMemberDef step_members[] = {
    STEP_FIELD("_in", in),
    STEP_FIELD("_kwargs", kwargs),
    STEP_FIELD("_out", out),
    STEP_FIELD("_spec", spec),
    STEP_FIELD("_status", status),
    {"_t0", T_LONGLONG, offsetof(StepFields, t0), 0, NULL},
    {"_t1", T_LONGLONG, offsetof(StepFields, t1), 0, NULL},
    STEP_FIELD("_x", x),
    STEP_FIELD("parent", parent),
    STEP_FIELD("run", run),
    STEP_FIELD("seq", seq),
    {NULL}};

static void
drop_head(StepFields *self)
{
    for (Py_ssize_t i = 0; i < self->head_n; i++) {
        Py_CLEAR(self->head[i]);
    }
    self->head_n = 0;
    self->total = 0;
}

/* Reads back the ``_args`` tuple Step.__init__ stores. */
static PyObject *
get_args(StepFields *self, void *closure)
{
    if (self->args == NULL && self->arg0 != NULL) {
        self->args = PyTuple_Pack(1, self->arg0);
        if (self->args == NULL) {
            return NULL;
        }
        Py_CLEAR(self->arg0);
    }
    if (self->args == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_args");
        return NULL;
    }
    return Py_NewRef(self->args);
}

static int
set_args(StepFields *self, PyObject *value, void *closure)
{
    Py_XINCREF(value);
    Py_XSETREF(self->args, value);
    Py_CLEAR(self->arg0);
    return 0;
}

/* Reads back the ``_id`` Step.__init__ stores: _ids._prefix | counter. */
static PyObject *
get_id(StepFields *self, void *closure)
{
    if (self->id == NULL && (self->id_hi | self->id_lo) != 0) {
        /* (hi << 64) | lo, with public API only (the byte-array helpers are private). */
        PyObject *hi = PyLong_FromUnsignedLongLong(self->id_hi);
        PyObject *lo = PyLong_FromUnsignedLongLong(self->id_lo);
        PyObject *bits = PyLong_FromLong(64);
        PyObject *shifted = hi && lo && bits ? PyNumber_Lshift(hi, bits) : NULL;
        self->id = shifted ? PyNumber_Or(shifted, lo) : NULL;
        Py_XDECREF(hi);
        Py_XDECREF(lo);
        Py_XDECREF(bits);
        Py_XDECREF(shifted);
        if (self->id == NULL) {
            return NULL;
        }
    }
    if (self->id == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_id");
        return NULL;
    }
    return Py_NewRef(self->id);
}

static int
set_id(StepFields *self, PyObject *value, void *closure)
{
    Py_XINCREF(value);
    Py_XSETREF(self->id, value);
    self->id_hi = self->id_lo = 0;
    return 0;
}

/* Reads back what Step._end stores in ``_result``: the (CUT, head, total) tuple. */
static PyObject *
get_result(StepFields *self, void *closure)
{
    if (self->result == NULL && self->total > 0) {
        PyObject *head = PyList_New(self->head_n);
        if (head == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < self->head_n; i++) {
            PyList_SET_ITEM(head, i, Py_NewRef(self->head[i]));
        }
        self->result = Py_BuildValue("(ONn)", cut_marker, head, self->total);
        if (self->result == NULL) {
            return NULL;
        }
        drop_head(self);
    }
    if (self->result == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_result");
        return NULL;
    }
    return Py_NewRef(self->result);
}

static int
set_result(StepFields *self, PyObject *value, void *closure)
{
    Py_XINCREF(value);
    Py_XSETREF(self->result, value);
    drop_head(self);
    return 0;
}

static PyGetSetDef step_getset[] = {
    {"_args", (getter)get_args, (setter)set_args, NULL, NULL},
    {"_id", (getter)get_id, (setter)set_id, NULL, NULL},
    {"_result", (getter)get_result, (setter)set_result, NULL, NULL},
    {NULL}};

static int
step_traverse(StepFields *self, visitproc visit, void *arg)
{
    Py_VISIT(self->args);
    Py_VISIT(self->arg0);
    Py_VISIT(self->id);
    Py_VISIT(self->in);
    Py_VISIT(self->kwargs);
    Py_VISIT(self->out);
    Py_VISIT(self->result);
    for (Py_ssize_t i = 0; i < self->head_n; i++) {
        Py_VISIT(self->head[i]);
    }
    Py_VISIT(self->spec);
    Py_VISIT(self->status);
    Py_VISIT(self->x);
    Py_VISIT(self->parent);
    Py_VISIT(self->run);
    Py_VISIT(self->seq);
    return 0;
}

static int
step_clear(StepFields *self)
{
    Py_CLEAR(self->args);
    Py_CLEAR(self->arg0);
    Py_CLEAR(self->id);
    Py_CLEAR(self->in);
    Py_CLEAR(self->kwargs);
    Py_CLEAR(self->out);
    Py_CLEAR(self->result);
    drop_head(self);
    Py_CLEAR(self->spec);
    Py_CLEAR(self->status);
    Py_CLEAR(self->x);
    Py_CLEAR(self->parent);
    Py_CLEAR(self->run);
    Py_CLEAR(self->seq);
    return 0;
}

static void
step_dealloc(StepFields *self)
{
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, step_dealloc)
    step_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

static PyTypeObject StepFieldsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "xray.sdk._speedups.StepFields",
    .tp_doc = "The storage of a Step (its methods live in xray.sdk._step.Step).",
    .tp_basicsize = sizeof(StepFields),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)step_dealloc,
    .tp_traverse = (traverseproc)step_traverse,
    .tp_clear = (inquiry)step_clear,
    .tp_members = step_members,
    .tp_getset = step_getset,
};

/* -- what configure() hands over ------------------------------------------------- */

static PyTypeObject *step_type;   /* xray.sdk._step.Step (a subclass of StepFields) */
static PyTypeObject *run_type;    /* xray.sdk._run.Run */
static PyObject *frame_var;       /* the ContextVar holding the innermost step or run */
static PyObject *runtime;         /* xray.sdk._context.runtime */
static unsigned long long id_prefix_hi, id_prefix_lo; /* _ids._prefix (new after fork) */
static unsigned long long id_count;
static PyObject *auto_marker;     /* _step._AUTO: "count the output automatically" */
static PyObject *status_running;
static PyObject *status_success;
static PyObject *count_fn;        /* _step._count: len() of anything sized, not text */
static PyObject *internal_error;  /* _guard.internal_error(exc) */
static Py_ssize_t preview_items;  /* results longer than this keep only their head */
static Py_ssize_t off_recording, off_resolved;          /* slots of runtime */
static Py_ssize_t off_run_seq, off_run_client, off_run_implicit;  /* slots of Run */
static PyTypeObject *buffer_type; /* xray.sdk._buffer.Buffer */
static PyObject *buffer_put;      /* Buffer.put, the function */
static Py_ssize_t off_items, off_capacity, off_batch, off_accepting, off_on_first;
static PyObject *str_submit, *str_append, *str_end, *str_fail;
static int configured;

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

static Py_ssize_t
slot_offset(PyObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(type, name);
    if (descr == NULL) {
        return -1;
    }
    if (!PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s is not a __slots__ member", name);
        Py_DECREF(descr);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    Py_ssize_t offset = member->type == T_OBJECT_EX ? member->offset : -1;
    Py_DECREF(descr);
    if (offset < 0) {
        PyErr_Format(PyExc_TypeError, "%s is not an object slot", name);
    }
    return offset;
}

#define KEEP(var, value)          \
    do {                          \
        Py_XSETREF(var, (value)); \
        Py_XINCREF(var);          \
    } while (0)

/* Mirrors nothing: takes the Python objects the functions above mirror or read. */
static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"step_type", "run_type", "runtime_type", "buffer_type", "frame",
                            "runtime", "auto", "cut", "running", "success", "count",
                            "internal_error", "preview_items", NULL};
    PyObject *st, *rt, *rtt, *bt, *fr, *rtm, *au, *cu, *running, *success, *cnt, *ie;
    Py_ssize_t head;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!OOOOUUOOn", names, &PyType_Type,
                                     &st, &PyType_Type, &rt, &PyType_Type, &rtt, &PyType_Type,
                                     &bt, &fr, &rtm, &au, &cu, &running, &success, &cnt,
                                     &ie, &head)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)st, &StepFieldsType)) {
        PyErr_SetString(PyExc_TypeError, "step_type must subclass StepFields");
        return NULL;
    }
    Py_ssize_t o1 = slot_offset(rtt, "recording"), o2 = slot_offset(rtt, "resolved");
    Py_ssize_t o3 = slot_offset(rt, "_seq"), o4 = slot_offset(rt, "_client");
    Py_ssize_t o5 = slot_offset(rt, "implicit");
    Py_ssize_t b1 = slot_offset(bt, "_items"), b2 = slot_offset(bt, "capacity");
    Py_ssize_t b3 = slot_offset(bt, "batch_size"), b4 = slot_offset(bt, "accepting");
    Py_ssize_t b5 = slot_offset(bt, "on_first");
    if (o1 < 0 || o2 < 0 || o3 < 0 || o4 < 0 || o5 < 0 || b1 < 0 || b2 < 0 || b3 < 0 ||
        b4 < 0 || b5 < 0) {
        return NULL;
    }
    if (!PyObject_TypeCheck(rtm, (PyTypeObject *)rtt)) {
        PyErr_SetString(PyExc_TypeError, "runtime is not a runtime_type");
        return NULL;
    }
    if (head < 0 || head > HEAD_MAX) {
        PyErr_Format(PyExc_ValueError, "preview_items must be within 0..%d", HEAD_MAX);
        return NULL;
    }
    KEEP(step_type, (PyTypeObject *)st);
    KEEP(run_type, (PyTypeObject *)rt);
    PyObject *put = PyObject_GetAttrString(bt, "put");
    if (put == NULL) {
        return NULL;
    }
    Py_XSETREF(buffer_put, put);
    KEEP(buffer_type, (PyTypeObject *)bt);
    off_items = b1;
    off_capacity = b2;
    off_batch = b3;
    off_accepting = b4;
    off_on_first = b5;
    KEEP(frame_var, fr);
    KEEP(runtime, rtm);
    KEEP(auto_marker, au);
    KEEP(cut_marker, cu);
    KEEP(status_running, running);
    KEEP(status_success, success);
    KEEP(count_fn, cnt);
    KEEP(internal_error, ie);
    preview_items = head;
    off_recording = o1;
    off_resolved = o2;
    off_run_seq = o3;
    off_run_client = o4;
    off_run_implicit = o5;
    configured = 1;
    Py_RETURN_NONE;
}

/* -- the wrapper ----------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *fn;       /* the user's function */
    PyObject *spec;     /* _step._Spec */
    PyObject *slow;     /* the Python wrapper: every case this file does not handle */
    PyObject *dict;     /* __dict__: functools.wraps puts __name__, __wrapped__ ... here */
    PyObject *weakrefs;
    Py_ssize_t arg_index;  /* 1 for methods: count the first real argument */
    vectorcallfunc vectorcall;
} StepWrapper;

/* Mirrors time.perf_counter_ns(), the clock of _step.py and _run.py: the very function
 * the interpreter implements it with, so both paths read one clock on every platform
 * (mach_absolute_time on macOS, QueryPerformanceCounter on Windows, CLOCK_MONOTONIC on
 * Linux). A step's times are placed relative to its run's start, read by the Python
 * path: another clock would shift them by whatever the two clocks drift apart. */
static inline long long
clock_ns(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    if (PyTime_PerfCounter(&t) < 0) {
        PyErr_Clear();
        return 0;
    }
    return (long long)t;
#else
    return (long long)_PyTime_GetPerfCounter(); /* nanoseconds before 3.13 */
#endif
}

/* Mirrors the count of Step.__init__ / Step._end: len() of a built-in collection,
 * else _step._count(value). */
static PyObject *
count_of(PyObject *value)
{
    PyTypeObject *kind = Py_TYPE(value);
    if (kind == &PyList_Type || kind == &PyTuple_Type || kind == &PyDict_Type ||
        kind == &PySet_Type || kind == &PyFrozenSet_Type) {
        Py_ssize_t n = PyObject_Length(value);
        return n < 0 ? NULL : PyLong_FromSsize_t(n);
    }
    return PyObject_CallOneArg(count_fn, value);
}

/* Mirrors the ``except Exception as exc: internal_error(exc)`` of _step.py: report an
 * error of ours (never the user's) and carry on. */
static void
swallow_error(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL) {
        if (tb != NULL) {
            PyException_SetTraceback(value, tb);
        }
        PyObject *r = PyObject_CallOneArg(internal_error, value);
        if (r == NULL) {
            PyErr_Clear();
        }
        Py_XDECREF(r);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* Mirrors Step.__init__ (xray/sdk/_step.py) for a spec without a key. */
static StepFields *
new_step(StepWrapper *self, PyObject *run, PyObject *parent, PyObject *const *args,
         Py_ssize_t nargs, PyObject *kwnames)
{
    StepFields *s = (StepFields *)step_type->tp_alloc(step_type, 0);
    if (s == NULL) {
        return NULL;
    }
    s->seq = PyIter_Next(SLOT(run, off_run_seq));
    if (s->seq == NULL) {
        goto fail;
    }
    /* The id: this process's prefix with a counter of its own, started at 2**61 so it
     * never meets the one _ids.new_id() counts up from 1 (both stay under 2**62). */
    s->id_hi = id_prefix_hi;
    s->id_lo = id_prefix_lo | ((1ULL << 61) + ++id_count);
    if (nargs == 1) {
        s->arg0 = Py_NewRef(args[0]);
    }
    else {
        s->args = PyTuple_New(nargs);
        if (s->args == NULL) {
            goto fail;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            PyTuple_SET_ITEM(s->args, i, Py_NewRef(args[i]));
        }
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyObject *kw = PyDict_New();
        if (kw == NULL) {
            goto fail;
        }
        s->kwargs = kw;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                goto fail;
            }
        }
    }
    else {
        s->kwargs = Py_NewRef(Py_None);
    }
    if (nargs > self->arg_index) {
        s->in = count_of(args[self->arg_index]);
        if (s->in == NULL) {
            goto fail;
        }
    }
    else {
        s->in = Py_NewRef(Py_None);
    }
    s->spec = Py_NewRef(self->spec);
    s->run = Py_NewRef(run);
    s->parent = Py_NewRef(parent);
    s->out = Py_NewRef(auto_marker);
    s->status = Py_NewRef(status_running);
    s->result = Py_NewRef(Py_None);
    s->x = Py_NewRef(Py_None);
    s->t0 = clock_ns();
    return s;
fail:
    Py_DECREF(s);
    return NULL;
}

/* Mirrors client._submit(item), that is Buffer.put (xray/sdk/_buffer.py). When it is
 * Buffer.put of a Buffer (always, outside tests),
 * the usual case (room left, the sender started, the batch not yet full) is done here
 * without a Python call; anything else (a drop to count, the sender to start or wake)
 * goes through Buffer.put itself. The GIL is held throughout, so the check and the
 * append cannot interleave with another thread. */
static int
submit(PyObject *client, PyObject *item)
{
    PyObject *method = PyObject_GetAttr(client, str_submit);
    if (method == NULL) {
        return -1;
    }
    PyObject *r;
    if (!PyMethod_Check(method) || PyMethod_GET_FUNCTION(method) != buffer_put ||
        Py_TYPE(PyMethod_GET_SELF(method)) != buffer_type) {
        r = PyObject_CallOneArg(method, item);
        Py_DECREF(method);
        goto called;
    }
    PyObject *buffer = Py_NewRef(PyMethod_GET_SELF(method));
    Py_DECREF(method);
    {
        PyObject *items = SLOT(buffer, off_items), *capacity = SLOT(buffer, off_capacity);
        PyObject *batch = SLOT(buffer, off_batch);
        if (items != NULL && capacity != NULL && batch != NULL &&
            SLOT(buffer, off_accepting) == Py_True && SLOT(buffer, off_on_first) == Py_None &&
            PyLong_CheckExact(capacity) && PyLong_CheckExact(batch)) {
            Py_ssize_t size = PyObject_Length(items);
            if (size >= 0 && size < PyLong_AsSsize_t(capacity) &&
                size + 1 < PyLong_AsSsize_t(batch)) {
                r = PyObject_CallMethodOneArg(items, str_append, item);
                goto done;
            }
            if (PyErr_Occurred()) {
                Py_DECREF(buffer);
                return -1;
            }
        }
    }
    {
        PyObject *call[2] = {buffer, item};
        r = PyObject_Vectorcall(buffer_put, call, 2, NULL);
    }
done:
    Py_DECREF(buffer);
called:
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Mirrors Step._end(result) (xray/sdk/_step.py): everything after a successful call. */
static void
end_step(StepFields *s, PyObject *result)
{
    Py_SETREF(s->status, Py_NewRef(status_success));
    if (s->out == auto_marker) {
        PyObject *n = count_of(result);
        if (n == NULL) {
            return;
        }
        Py_SETREF(s->out, n);
    }
    Py_ssize_t size;
    if (PyList_CheckExact(result) && (size = PyList_GET_SIZE(result)) > preview_items) {
        /* Keep only what a preview shows, inline: no list copy, fewer live objects. */
        Py_CLEAR(s->result);
        for (Py_ssize_t i = 0; i < preview_items; i++) {
            s->head[i] = Py_NewRef(PyList_GET_ITEM(result, i));
        }
        s->head_n = preview_items;
        s->total = size;
    }
    else {
        Py_SETREF(s->result, Py_NewRef(result));
    }
    PyObject *run = s->run;
    if (submit(SLOT(run, off_run_client), (PyObject *)s) < 0) {
        return;
    }
    PyObject *r;
    if (s->parent == Py_None && SLOT(run, off_run_implicit) == Py_True) {
        PyObject *kept = get_result(s, NULL);
        if (kept == NULL) {
            return;
        }
        PyObject *call[3] = {run, Py_None, kept};
        r = PyObject_VectorcallMethod(str_end, call, 3, NULL);
        Py_DECREF(kept);
        Py_XDECREF(r);
    }
}

/* Mirrors step_wrapper in _step._wrap_function: the call of a decorated function. */
static PyObject *
wrapper_vectorcall(StepWrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (!configured) {
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    }
    if (SLOT(runtime, off_recording) != Py_True) {
        if (SLOT(runtime, off_resolved) == Py_True) {
            return PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
        }
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    }
    PyObject *current;
    if (PyContextVar_Get(frame_var, Py_None, &current) < 0) {
        PyErr_Clear();
        return PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    }
    PyObject *run, *parent;
    if (Py_TYPE(current) == step_type) {
        run = ((StepFields *)current)->run;
        parent = current;
    }
    else if (Py_TYPE(current) == run_type) {
        run = current;
        parent = Py_None;
    }
    else {
        Py_DECREF(current);
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    StepFields *s = new_step(self, run, parent, args, nargs, kwnames);
    Py_DECREF(current);
    if (s == NULL) {
        swallow_error();
        return PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    }
    PyObject *token = PyContextVar_Set(frame_var, (PyObject *)s);
    if (token == NULL) {
        swallow_error();
        Py_DECREF(s);
        return PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    }
    PyObject *result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    if (result == NULL) {
        /* The user's exception: record it, then re-raise the same object unchanged. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL) {
            PyException_SetTraceback(value, tb);
        }
        if (PyContextVar_Reset(frame_var, token) < 0) {
            swallow_error();
        }
        Py_DECREF(token);
        if (value != NULL) {
            PyObject *r = PyObject_CallMethodOneArg((PyObject *)s, str_fail, value);
            if (r == NULL) {
                swallow_error();
            }
            Py_XDECREF(r);
        }
        Py_DECREF(s);
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    s->t1 = clock_ns();
    if (PyContextVar_Reset(frame_var, token) < 0) {
        swallow_error();
    }
    Py_DECREF(token);
    end_step(s, result);
    if (PyErr_Occurred()) {
        swallow_error();
    }
    Py_DECREF(s);
    return result;
}

static PyObject *
wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"fn", "spec", "slow", "arg_index", NULL};
    PyObject *fn, *spec, *slow;
    Py_ssize_t arg_index;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOn", names, &fn, &spec, &slow,
                                     &arg_index)) {
        return NULL;
    }
    StepWrapper *self = (StepWrapper *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fn = Py_NewRef(fn);
    self->spec = Py_NewRef(spec);
    self->slow = Py_NewRef(slow);
    self->arg_index = arg_index;
    self->vectorcall = (vectorcallfunc)wrapper_vectorcall;
    return (PyObject *)self;
}

static int
wrapper_traverse(StepWrapper *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fn);
    Py_VISIT(self->spec);
    Py_VISIT(self->slow);
    Py_VISIT(self->dict);
    return 0;
}

static int
wrapper_clear(StepWrapper *self)
{
    Py_CLEAR(self->fn);
    Py_CLEAR(self->spec);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->dict);
    return 0;
}

static void
wrapper_dealloc(StepWrapper *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    wrapper_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A method decorated with @step binds like a function does. */
static PyObject *
wrapper_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
wrapper_repr(StepWrapper *self)
{
    return PyUnicode_FromFormat("<xray step %R>", self->fn);
}

/* Pickle (and copy) by reference, as pickle does a module-level function. */
static PyObject *
wrapper_reduce(StepWrapper *self, PyObject *unused)
{
    return PyObject_GetAttrString((PyObject *)self, "__qualname__");
}

static PyMethodDef wrapper_methods[] = {
    {"__reduce__", (PyCFunction)wrapper_reduce, METH_NOARGS, NULL},
    {NULL}};

static PyGetSetDef wrapper_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL}};

static PyTypeObject StepWrapperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "xray.sdk._speedups.StepWrapper",
    .tp_doc = "A function decorated with @step (the C fast path).",
    .tp_basicsize = sizeof(StepWrapper),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = wrapper_new,
    .tp_dealloc = (destructor)wrapper_dealloc,
    .tp_traverse = (traverseproc)wrapper_traverse,
    .tp_clear = (inquiry)wrapper_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(StepWrapper, vectorcall),
    .tp_dictoffset = offsetof(StepWrapper, dict),
    .tp_weaklistoffset = offsetof(StepWrapper, weakrefs),
    .tp_descr_get = wrapper_get,
    .tp_repr = (reprfunc)wrapper_repr,
    .tp_methods = wrapper_methods,
    .tp_getset = wrapper_getset,
};

/* -- module ---------------------------------------------------------------------- */

/* The clock of the step times, for tests: the same readings as time.perf_counter_ns(). */
static PyObject *
perf_counter_ns(PyObject *module, PyObject *unused)
{
    return PyLong_FromLongLong(clock_ns());
}

/* Mirrors _ids.new_id's prefix: takes _ids._prefix, split in two 64-bit halves. */
static PyObject *
set_id_prefix(PyObject *module, PyObject *prefix)
{
    /* _ids._prefix: 60 random bits and the version nibble in the high half, the RFC 4122
     * variant in the low half. Set at import and again in a forked child. */
    if (!PyLong_Check(prefix)) {
        PyErr_SetString(PyExc_TypeError, "the prefix must be an int");
        return NULL;
    }
    PyObject *bits = PyLong_FromLong(64);
    PyObject *high = bits ? PyNumber_Rshift(prefix, bits) : NULL;
    Py_XDECREF(bits);
    if (high == NULL) {
        return NULL;
    }
    unsigned long long lo = PyLong_AsUnsignedLongLongMask(prefix);
    unsigned long long hi = PyLong_AsUnsignedLongLongMask(high);
    Py_DECREF(high);
    if (PyErr_Occurred()) {
        return NULL;
    }
    id_prefix_lo = lo;
    id_prefix_hi = hi;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"perf_counter_ns", (PyCFunction)perf_counter_ns, METH_NOARGS,
     "The clock step times are read from: time.perf_counter_ns()'s."},
    {"set_id_prefix", (PyCFunction)set_id_prefix, METH_O,
     "Take _ids._prefix (at import, and after fork in the child)."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Hand over the Python objects the fast path reads (called once by xray.sdk._step)."},
    {NULL}};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "xray.sdk._speedups",
    .m_doc = "The @step hot path in C; xray.sdk._step falls back to Python without it.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&StepFieldsType) < 0 || PyType_Ready(&StepWrapperType) < 0) {
        return NULL;
    }
    str_submit = PyUnicode_InternFromString("_submit");
    str_append = PyUnicode_InternFromString("append");
    str_end = PyUnicode_InternFromString("_end");
    str_fail = PyUnicode_InternFromString("_fail");
    if (str_submit == NULL || str_append == NULL ||
        str_end == NULL || str_fail == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL) {
        return NULL;
    }
    /* Bumped whenever what xray/sdk/_step.py expects of this module changes: a stale
     * build (an editable install not rebuilt) is then ignored instead of misused. */
    if (PyModule_AddIntConstant(m, "INTERFACE", 3) < 0 ||
        PyModule_AddObjectRef(m, "StepFields", (PyObject *)&StepFieldsType) < 0 ||
        PyModule_AddObjectRef(m, "StepWrapper", (PyObject *)&StepWrapperType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
