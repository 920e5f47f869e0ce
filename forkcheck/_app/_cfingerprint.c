/* The state fingerprint walk of _fingerprint.py, in C, for CPython 3.11, 3.12 and 3.13.
 *
 * Why: a snapshot process is a copy-on-write fork, and in CPython every read of an
 * object through Python code writes its reference count, so the Python walk copies
 * every page that holds an object of the state (about 300 of the 440 pages a small
 * transition copies, `forkcheck bench` section 5).  This walk reads the objects
 * through borrowed references and writes nothing but its own buffers.
 *
 * It emits exactly the token stream of _fingerprint._Hasher (tests compare the
 * two on every state of the examples), so the digest does not depend on which walk
 * ran.  Whatever it cannot reproduce exactly (a frame in an unexpected state, a
 * structure nested too deeply for the C stack) raises _fingerprint.Fallback and the
 * Python walk takes over.  User code (__fc_state__ hooks, __reduce_ex__) is called
 * as the Python walk calls it; every new reference it returns is kept until the
 * walk ends, so that no id is reused while the memo holds it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdbool.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#error "the C fingerprint walk reads the frames of CPython 3.11 to 3.13; other versions use the Python walk"
#endif

/* ------------------------------------------------------------------ CPython internals, per version */

/* What the walk reads that is not public API, mirrored from the headers of each version so
   that no Py_BUILD_CORE is needed; everything else below is written against these names. */

typedef uint16_t fc_codeunit;  /* _Py_CODEUNIT */

#if PY_VERSION_HEX < 0x030C0000
/* Include/internal/pycore_frame.h (3.11) */
typedef struct _fc_iframe {
    PyFunctionObject *f_func;
    PyObject *f_globals;
    PyObject *f_builtins;
    PyObject *f_locals;
    PyCodeObject *f_code;
    PyFrameObject *frame_obj;
    struct _fc_iframe *previous;
    fc_codeunit *prev_instr;
    int stacktop;
    bool is_entry;
    char owner;
    PyObject *localsplus[1];
} fc_iframe;
#define FC_IFRAME_CODE(f) ((PyObject *)(f)->f_code)
#define FC_IFRAME_FUNC(f) ((PyObject *)(f)->f_func)
#define FC_IFRAME_INSTR(f) ((f)->prev_instr)  /* the last instruction run */
#elif PY_VERSION_HEX < 0x030D0000
/* Include/internal/pycore_frame.h (3.12) */
typedef struct _fc_iframe {
    PyCodeObject *f_code;
    struct _fc_iframe *previous;
    PyObject *f_funcobj;
    PyObject *f_globals;
    PyObject *f_builtins;
    PyObject *f_locals;
    PyFrameObject *frame_obj;
    fc_codeunit *prev_instr;
    int stacktop;
    uint16_t return_offset;
    char owner;
    PyObject *localsplus[1];
} fc_iframe;
#define FC_IFRAME_CODE(f) ((PyObject *)(f)->f_code)
#define FC_IFRAME_FUNC(f) ((f)->f_funcobj)
#define FC_IFRAME_INSTR(f) ((f)->prev_instr)
#else
/* Include/internal/pycore_frame.h (3.13) */
typedef struct _fc_iframe {
    PyObject *f_executable;
    struct _fc_iframe *previous;
    PyObject *f_funcobj;
    PyObject *f_globals;
    PyObject *f_builtins;
    PyObject *f_locals;
    PyFrameObject *frame_obj;
    fc_codeunit *instr_ptr;
    int stacktop;
    uint16_t return_offset;
    char owner;
    PyObject *localsplus[1];
} fc_iframe;
#define FC_IFRAME_CODE(f) ((f)->f_executable)
#define FC_IFRAME_FUNC(f) ((f)->f_funcobj)
#define FC_IFRAME_INSTR(f) ((f)->instr_ptr)  /* the next instruction to run */

/* struct _frame (PyFrameObject), Include/internal/pycore_frame.h (3.13): f_extra_locals holds
   what was assigned through frame.f_locals to names that are not fast locals */
typedef struct {
    PyObject_HEAD
    PyFrameObject *f_back;
    fc_iframe *f_frame;
    PyObject *f_trace;
    int f_lineno;
    char f_trace_lines;
    char f_trace_opcodes;
    PyObject *f_extra_locals;
} fc_frameobject;

/* Include/internal/pycore_setobject.h (3.13): no longer declared for extensions, still exported */
PyAPI_FUNC(int) _PySet_NextEntry(PyObject *set, Py_ssize_t *pos, PyObject **key, Py_hash_t *hash);
#endif

/* The frame of a generator, coroutine or async generator (PyGenObject's gi_iframe) and its
   code, gen.gi_code: 3.11 keeps it in gi_code (the frame's f_code is released when the frame is
   cleared), 3.12 and 3.13 in the frame, which keeps it when cleared. */
#define FC_GEN_IFRAME(g) ((fc_iframe *)(g)->gi_iframe)
#if PY_VERSION_HEX < 0x030C0000
#define FC_GEN_CODE(g) ((PyObject *)(g)->gi_code)
#else
#define FC_GEN_CODE(g) FC_IFRAME_CODE(FC_GEN_IFRAME(g))
#endif
/* frame.f_lasti: _PyInterpreterFrame_LASTI, in code units (negative: not started) */
#define FC_IFRAME_LASTI(f, code) ((int)(FC_IFRAME_INSTR(f) - (fc_codeunit *)(code)->co_code_adaptive))

/* PyGenObject.gi_frame_state (Include/internal/pycore_frame.h): the states before the first
   resumption and while suspended are negative in all three versions (3.11 and 3.12: CREATED -2,
   SUSPENDED -1; 3.13: CREATED -3, SUSPENDED -2, SUSPENDED_YIELD_FROM -1), EXECUTING is 0,
   CLEARED is 4. */
#define FC_FRAME_CLEARED 4

/* Include/internal/pycore_code.h: _PyLocals_Kind bits */
#define FC_CO_FAST_HIDDEN 0x10  /* 3.12+: a variable of an inlined comprehension */
#define FC_CO_FAST_CELL 0x40
#define FC_CO_FAST_FREE 0x80

#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
/* Include/opcode.h (3.12): the opcodes of a generator's prologue */
#define FC_MAKE_CELL 135
#define FC_COPY_FREE_VARS 149
#define FC_EXTENDED_ARG 144
#endif

/* Include/object.h: Py_TPFLAGS_MANAGED_DICT (3.11+), Py_TPFLAGS_INLINE_VALUES (3.13+) */
#define FC_MANAGED_DICT (1UL << 4)
#define FC_INLINE_VALUES (1UL << 2)

/* Modules/_collectionsmodule.c (3.11 to 3.13) */
#define FC_BLOCKLEN 64
typedef struct fc_block {
    struct fc_block *leftlink;
    PyObject *data[FC_BLOCKLEN];
    struct fc_block *rightlink;
} fc_block;

typedef struct {
    PyObject_VAR_HEAD
    fc_block *leftblock;
    fc_block *rightblock;
    Py_ssize_t leftindex;
    Py_ssize_t rightindex;
    size_t state;
    Py_ssize_t maxlen;
} fc_deque;

typedef struct {
    PyDictObject dict;
    PyObject *default_factory;
} fc_defdict;

/* ------------------------------------------------------------------ configuration from Python */

static PyObject *Fallback;            /* _fingerprint.Fallback */
static PyObject *Opaque;              /* _fingerprint.Opaque */
static PyObject *ReducerCache;        /* _fingerprint._REDUCER_CACHE: type -> reducer or None */
static PyObject *ResolveReducer;      /* _fingerprint.resolve_reducer, for a type not in the cache */
static PyTypeObject *DequeType, *DefaultDictType, *CounterType, *UnorderedType, *EnumBase;
static PyObject *NewObj;              /* copyreg.__newobj__ */
static PyObject *ObjectClassDescr;    /* object.__dict__['__class__'] */
static PyObject *TypeModuleDescr, *TypeQualnameDescr, *EnumNameDescr;
static PyObject *ObjReduceEx, *ObjReduce, *ObjGetstate;  /* object's pickling methods */  /* type.__dict__[...], Enum.__dict__['name'] */
static PyObject *S_fc_state, *S_reduce_ex, *S_module, *S_name, *S_qualname, *S_newobj,
    *S_items, *S_class, *S_name_, *S_reduce, *S_getstate, *S_getnewargs_ex, *S_getnewargs, *S_slotnames, *S_cr_await, *S_gi_yieldfrom, *S_ag_await, *S_dunder_name, *S_locals;

#define MAX_DEPTH 4000

/* symmetry.py's SymmetricValue (its _k and _tok slots, read in place) and fingerprint.SymmetryLeak */
static PyTypeObject *SymValueType;
static Py_ssize_t SymK_offset = -1, SymTok_offset = -1;
static PyObject *SymmetryLeak;

/* ------------------------------------------------------------------ BLAKE2b (RFC 7693) */

/* The digest of the Python walk (hashlib's blake2b, digest_size=16), computed here so
   that hashing allocates nothing. */
static const uint64_t B2_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
static const uint8_t B2_SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define B2_G(a, b, c, d, x, y)                                                   \
    do {                                                                         \
        a = a + b + (x); d = rotr64(d ^ a, 32); c = c + d; b = rotr64(b ^ c, 24); \
        a = a + b + (y); d = rotr64(d ^ a, 16); c = c + d; b = rotr64(b ^ c, 63); \
    } while (0)

static void b2_compress(uint64_t h[8], const unsigned char *block, uint64_t t, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) { v[i] = h[i]; v[i + 8] = B2_IV[i]; }
    v[12] ^= t;  /* the high half of the 128-bit counter stays 0: inputs are below 2**64 bytes */
    if (last) v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = B2_SIGMA[r];
        B2_G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
        B2_G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
        B2_G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
        B2_G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
        B2_G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
        B2_G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
        B2_G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
        B2_G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* The same digest, fed in pieces: the walk hashes its stream as it goes, so that a big state
   never needs a buffer of its whole stream (fresh pages to fault in, a copy of every buffer). */
typedef struct {
    uint64_t h[8];
    uint64_t t;              /* bytes compressed so far */
    unsigned char blk[128];  /* the last block, compressed only when more input follows or at the end */
    size_t blen;
} b2_state;

static void b2_init(b2_state *s) {
    memcpy(s->h, B2_IV, sizeof s->h);
    s->h[0] ^= 0x01010000ULL ^ 16;
    s->t = 0;
    s->blen = 0;
}

static void b2_update(b2_state *s, const unsigned char *data, size_t n) {
    if (s->blen + n <= 128) {
        memcpy(s->blk + s->blen, data, n);
        s->blen += n;
        return;
    }
    size_t fill = 128 - s->blen;
    memcpy(s->blk + s->blen, data, fill);
    data += fill;
    n -= fill;
    s->t += 128;
    b2_compress(s->h, s->blk, s->t, 0);
    while (n > 128) {
        s->t += 128;
        b2_compress(s->h, data, s->t, 0);
        data += 128;
        n -= 128;
    }
    memcpy(s->blk, data, n);
    s->blen = n;
}

static void b2_final(b2_state *s, unsigned char out[16]) {
    memset(s->blk + s->blen, 0, 128 - s->blen);
    s->t += s->blen;
    b2_compress(s->h, s->blk, s->t, 1);
    for (int i = 0; i < 16; i++) out[i] = (unsigned char)(s->h[i / 8] >> (8 * (i % 8)));
}

static void blake2b16(unsigned char out[16], const unsigned char *data, size_t len) {
    b2_state s;
    b2_init(&s);
    b2_update(&s, data, len);
    b2_final(&s, out);
}

/* ------------------------------------------------------------------ scratch memory */

/* Everything the walk allocates for itself comes from fresh anonymous mappings, unmapped
   when the walk ends: malloc would hand out free chunks scattered over pages the snapshot
   shares with its parent, and every one of them would be copied. */
typedef struct chunk {
    struct chunk *prev;
    size_t size, used;
    char data[];
} chunk;

typedef struct {
    chunk *top, *spare;
} arena_t;

typedef struct {
    chunk *top;
    size_t used;
} mark_t;

static void *arena_alloc(arena_t *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (a->top == NULL || a->top->used + n > a->top->size) {
        chunk *c = NULL;
        if (a->spare && a->spare->size >= n) {
            c = a->spare;
            a->spare = c->prev;
        } else {
            size_t total = (n + sizeof(chunk) + (1 << 20) - 1) & ~(size_t)((1 << 20) - 1);
            void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) { PyErr_NoMemory(); return NULL; }
            c = p;
            c->size = total - sizeof(chunk);
        }
        c->used = 0;
        c->prev = a->top;
        a->top = c;
    }
    void *p = a->top->data + a->top->used;
    a->top->used += n;
    return p;
}

static mark_t arena_mark(arena_t *a) { return (mark_t){a->top, a->top ? a->top->used : 0}; }

static void arena_release(arena_t *a, mark_t m) {
    while (a->top != m.top) {
        chunk *c = a->top;
        a->top = c->prev;
        c->prev = a->spare;
        a->spare = c;
    }
    if (a->top) a->top->used = m.used;
}

static void arena_free(arena_t *a) {
    chunk *lists[2] = {a->top, a->spare};
    for (int k = 0; k < 2; k++)
        for (chunk *c = lists[k], *prev; c; c = prev) {
            prev = c->prev;
            munmap(c, c->size + sizeof(chunk));
        }
    a->top = a->spare = NULL;
}

/* ------------------------------------------------------------------ the walker */

typedef struct {
    PyObject **keys;
    Py_ssize_t *vals;
    Py_ssize_t cap, used;
} memo_t;

typedef struct {
    uint64_t *v;
    Py_ssize_t n, cap;
} sigvec_t;

typedef struct {
    arena_t own;      /* the token buffer and the memo: kept until the walk ends */
    arena_t *scratch; /* short-lived arrays, released in stack order; shared with sub-walks */
    char *buf;        /* the tokens not hashed yet (all of them when the walk keeps its stream) */
    size_t len, cap;
    size_t hashed;    /* bytes of the stream already given to the hash */
    size_t tokstart;  /* where the open token starts, in the whole stream */
    bool open;        /* a token is open: its length not written yet */
    bool keep_stream; /* the stream is wanted (tests, shallow keys): buffer it whole, hash at the end */
    int open_units;   /* while one is open, nothing is hashed before its end: it may be replaced */
    Py_ssize_t minref; /* the lowest number a back-reference inside the open units named */
    Py_ssize_t nobj;  /* objects numbered so far (the memo holds fewer when units were reused) */
    bool caching;     /* units are looked up in, and written to, the cache (docs/design.md, "Units") */
    bool reusable;    /* the innermost open unit holds plain data only, each object referenced once */
    const struct uctx *unit; /* the innermost open unit (unit()), or NULL */
    uint64_t *pages;  /* the pages the open units' objects lie on, innermost last */
    Py_ssize_t npages, pagecap;
    b2_state hash;
    bool key_mode;    /* the walk of a canonical key: unordered containers ordered by shallow keys */
    memo_t memo;
    PyObject *keep;   /* list of new references, alive until the walk ends; NULL until needed */
    /* symmetry (fingerprint._Hasher's fields of the same names): borrowed from the Walker object */
    PyObject *labels; /* tuple of str by a value's _k, or NULL: a value's own _tok */
    PyObject *names;  /* tuple of (set name, n): no string of the state may name a value; NULL: no check */
    bool sym;         /* dicts with a symmetric key in the order of their keys' keys */
    bool track;       /* record the signature contexts of the values */
    uint64_t ctx;
    Py_ssize_t base, ntok;
    sigvec_t *sigs;   /* by _k, when track */
    Py_ssize_t nsigs;
    char inl[256];    /* the first tokens: a canonical key's walk usually needs no more */
} walk_t;

static int depth;  /* of the C recursion, across the walks of canonical keys */

typedef struct {
    PyObject_HEAD
    arena_t scratch;
    walk_t w;
    PyObject *labels, *names;  /* the references behind w.labels and w.names */
    arena_t subown;   /* the own arena of actor()'s walks, emptied and kept between them (no mmap each) */
} WalkerObject;

static int grow(walk_t *w, size_t extra) {
    if (w->len + extra <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + extra) cap *= 2;
    char *p = arena_alloc(&w->own, cap);  /* the old buffer stays in the arena until the walk ends */
    if (p == NULL) return -1;
    if (w->len) memcpy(p, w->buf, w->len);
    w->buf = p;
    w->cap = cap;
    return 0;
}

#define HASH_AT 65536  /* buffered bytes given to the hash at once, unless the stream is kept */

static int put(walk_t *w, const char *s, size_t n) {
    if (!w->keep_stream && !w->open_units && w->len + n > HASH_AT) {
        b2_update(&w->hash, (const unsigned char *)w->buf, w->len);
        w->hashed += w->len;
        w->len = 0;
        if (n > HASH_AT / 4) {  /* a big buffer (bytes, bytearray) is hashed where it lies */
            b2_update(&w->hash, (const unsigned char *)s, n);
            w->hashed += n;
            return 0;
        }
    }
    if (grow(w, n)) return -1;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return 0;
}

/* Every token is followed by its length in bytes (fingerprint._trailer), so that the stream
   parses back into its tokens from its end whatever bytes they hold: binary atoms need no
   escaping and no separator.  The length is written in base 128, most significant group
   first with its high bit clear, the others with it set. */
static int close_tok(walk_t *w) {
    if (!w->open) return 0;
    w->open = false;
    size_t n = w->hashed + w->len - w->tokstart;
    unsigned char g[10], t[10];
    int k = 0;
    do { g[k++] = (unsigned char)(n & 0x7f); n >>= 7; } while (n);
    for (int i = 0; i < k; i++) t[i] = (unsigned char)(g[k - 1 - i] | (i ? 0x80 : 0));
    return put(w, (const char *)t, (size_t)k);
}

/* A new token: the previous one closed, then its first characters. */
static int tok(walk_t *w, const char *s) {
    if (close_tok(w)) return -1;
    w->open = true;
    w->tokstart = w->hashed + w->len;
    w->ntok++;
    return put(w, s, strlen(s));
}

static int put_int(walk_t *w, long long v) {
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", v);
    return put(w, b, (size_t)n);
}

static int tok_int(walk_t *w, const char *prefix, long long v) {
    if (tok(w, prefix)) return -1;
    return put_int(w, v);
}

/* str's UTF-8 with lone surrogates passed through, as str.encode("utf-8", "surrogatepass"). */
static int put_str(walk_t *w, PyObject *s) {
    if (PyUnicode_IS_COMPACT_ASCII(s)) return put(w, (const char *)PyUnicode_DATA(s), (size_t)PyUnicode_GET_LENGTH(s));
    PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "surrogatepass");
    if (b == NULL) return -1;
    int r = put(w, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return r;
}

/* format(obj, ""), as an f-string field does */
static int put_format(walk_t *w, PyObject *o) {
    if (PyUnicode_CheckExact(o)) return put_str(w, o);
    PyObject *s = PyObject_Format(o, NULL);
    if (s == NULL) return -1;
    int r = put_str(w, s);
    Py_DECREF(s);
    return r;
}

/* ---- the atoms' binary tokens (fingerprint._atom_token): a tag byte no text token starts
   with, then the value's bytes.  Each keeps the equivalence of the repr the walk hashed
   before: ints as two's complement, little-endian, in (bit_length + 8) // 8 bytes (int.to_bytes);
   floats as IEEE 754 doubles, every NaN as one (repr wrote "nan" for all of them); str as
   UTF-8 with lone surrogates passed through; bytes and bytearray as they are. */

static int put_int_bytes(walk_t *w, PyObject *o) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow && !(v == -1 && PyErr_Occurred())) {
        unsigned long long a = v < 0 ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v;
        int bits = a ? 64 - __builtin_clzll(a) : 0;
        int n = (bits + 8) >> 3;
        unsigned long long u = (unsigned long long)v;
        unsigned char b[9];
        for (int i = 0; i < n; i++) b[i] = i < 8 ? (unsigned char)(u >> (8 * i)) : (v < 0 ? 0xff : 0);
        return put(w, (const char *)b, (size_t)n);
    }
    PyErr_Clear();
    size_t bits = _PyLong_NumBits(o);
    if (bits == (size_t)-1 && PyErr_Occurred()) return -1;
    size_t n = (bits + 8) >> 3;
    if (grow(w, n)) return -1;
#if PY_VERSION_HEX < 0x030D0000
    if (_PyLong_AsByteArray((PyLongObject *)o, (unsigned char *)w->buf + w->len, n, 1, 1)) return -1;
#else
    if (_PyLong_AsByteArray((PyLongObject *)o, (unsigned char *)w->buf + w->len, n, 1, 1, 1)) return -1;
#endif
    w->len += n;
    return 0;
}

static int put_double(walk_t *w, double d) {
    static const unsigned char nan[8] = {0, 0, 0, 0, 0, 0, 0xf8, 0x7f};
    if (d != d) return put(w, (const char *)nan, 8);
    unsigned char b[8];
    if (PyFloat_Pack8(d, (char *)b, 1)) return -1;
    return put(w, (const char *)b, 8);
}

static int put_atom(walk_t *w, PyObject *o, PyTypeObject *t) {
    if (t == &PyLong_Type) return tok(w, "\x01") || put_int_bytes(w, o);
    if (t == &PyFloat_Type) return tok(w, "\x02") || put_double(w, PyFloat_AS_DOUBLE(o));
    if (t == &PyComplex_Type) {
        Py_complex c = ((PyComplexObject *)o)->cval;
        return tok(w, "\x03") || put_double(w, c.real) || put_double(w, c.imag);
    }
    if (t == &PyUnicode_Type) return tok(w, "\x04") || put_str(w, o);
    if (t == &PyBytes_Type) return tok(w, "\x05") || put(w, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
    return tok(w, "\x06") || put(w, PyByteArray_AS_STRING(o), (size_t)PyByteArray_GET_SIZE(o));
}

/* A later visit of the object numbered i: its distance back from the next number
   (_Hasher.backref), so that a unit whose references stay inside it reads the same anywhere. */
static int backref(walk_t *w, Py_ssize_t i) {
    if (i < w->minref) w->minref = i;
    return tok_int(w, "@", w->nobj - i);
}

static int keep(walk_t *w, PyObject *o) {  /* steals o */
    if (w->keep == NULL && (w->keep = PyList_New(0)) == NULL) { Py_DECREF(o); return -1; }
    int r = PyList_Append(w->keep, o);
    Py_DECREF(o);
    return r;
}

/* ---- memo: object address -> first-visit number */

static inline size_t memo_slot(PyObject *o, Py_ssize_t cap) {
    uint64_t x = (uint64_t)(uintptr_t)o;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (size_t)(cap - 1);
}

static Py_ssize_t memo_get(memo_t *m, PyObject *o) {
    if (!m->cap) return -1;
    size_t mask = (size_t)m->cap - 1, i = memo_slot(o, m->cap);
    while (m->keys[i]) {
        if (m->keys[i] == o) return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

static int memo_put(walk_t *w, PyObject *o, Py_ssize_t v) {
    memo_t *m = &w->memo;
    if ((m->used + 1) * 2 > m->cap) {
        Py_ssize_t cap = m->cap ? m->cap * 2 : 256;
        memo_t n = {arena_alloc(&w->own, (size_t)cap * sizeof(PyObject *)), NULL, cap, 0};
        if (n.keys == NULL || (n.vals = arena_alloc(&w->own, (size_t)cap * sizeof(Py_ssize_t))) == NULL) return -1;
        memset(n.keys, 0, (size_t)cap * sizeof(PyObject *));
        for (Py_ssize_t k = 0; k < m->cap; k++)
            if (m->keys[k]) {
                size_t i = memo_slot(m->keys[k], cap);
                while (n.keys[i]) i = (i + 1) & (size_t)(cap - 1);
                n.keys[i] = m->keys[k];
                n.vals[i] = m->vals[k];
                n.used++;
            }
        *m = n;  /* the old table stays in the arena until the walk ends */
    }
    size_t mask = (size_t)m->cap - 1, i = memo_slot(o, m->cap);
    while (m->keys[i]) i = (i + 1) & mask;
    m->keys[i] = o;
    m->vals[i] = v;
    m->used++;
    return 0;
}

static void walk_start(walk_t *w, arena_t *scratch) {
    memset(w, 0, offsetof(walk_t, inl));
    w->scratch = scratch;
    w->buf = w->inl;
    w->cap = sizeof w->inl;
    w->minref = PY_SSIZE_T_MAX;
    b2_init(&w->hash);
}

static void walk_end(walk_t *w) {
    Py_CLEAR(w->keep);
    arena_free(&w->own);
    w->buf = w->inl;
    w->len = 0;
    w->hashed = 0;
    b2_init(&w->hash);
    w->open = false;
    w->cap = sizeof w->inl;
    memset(&w->memo, 0, sizeof w->memo);
}

static int walk_digest(walk_t *w, unsigned char out[16]) {
    if (close_tok(w)) return -1;
    b2_state s = w->hash;  /* a copy: digest() may be asked again, and the stream kept */
    b2_update(&s, (const unsigned char *)w->buf, w->len);
    b2_final(&s, out);
    return 0;
}

/* A walk of its own (a key) names the values as its parent does; it records no contexts. */
static void inherit(walk_t *sub, walk_t *w) {
    sub->labels = w->labels;
    sub->names = w->names;
    sub->sym = w->sym;
}

/* ---- signature contexts: fingerprint.fnv64 and fingerprint.mix */

static uint64_t fnv64(const char *data, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)data[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t z = a * 0x9E3779B97F4A7C15ULL + b;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int sig_add(walk_t *w, Py_ssize_t k, uint64_t c) {
    if (k < 0 || k >= w->nsigs) { PyErr_SetString(Fallback, "a symmetric value of another world"); return -1; }
    sigvec_t *s = &w->sigs[k];
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? s->cap * 2 : 16;
        uint64_t *v = arena_alloc(&w->own, (size_t)cap * sizeof *v);
        if (v == NULL) return -1;
        if (s->n) memcpy(v, s->v, (size_t)s->n * sizeof *v);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = c;
    return 0;
}

static int sigs_alloc(walk_t *w, Py_ssize_t n) {
    w->sigs = arena_alloc(&w->own, sizeof(sigvec_t) * (size_t)(n ? n : 1));
    if (w->sigs == NULL) return -1;
    memset(w->sigs, 0, sizeof(sigvec_t) * (size_t)(n ? n : 1));
    w->nsigs = n;
    return 0;
}

static inline Py_ssize_t sym_k(PyObject *o) {
    return PyLong_AsSsize_t(*(PyObject **)((char *)o + SymK_offset));
}

/* the token of a symmetric value: its label, or its own name */
static PyObject *sym_label(walk_t *w, PyObject *o) {
    if (w->labels == NULL) return *(PyObject **)((char *)o + SymTok_offset);
    Py_ssize_t k = sym_k(o);
    if (k < 0 || k >= PyTuple_GET_SIZE(w->labels)) {
        if (!PyErr_Occurred()) PyErr_SetString(Fallback, "a symmetric value of another world");
        return NULL;
    }
    return PyTuple_GET_ITEM(w->labels, k);
}

/* _Hasher.value */
static int sym_value(walk_t *w, PyObject *o) {
    if (w->track) {
        Py_ssize_t k = sym_k(o);
        if (k == -1 && PyErr_Occurred()) return -1;
        if (sig_add(w, k, mix(mix(5, w->ctx), (uint64_t)(w->ntok - w->base)))) return -1;
    }
    PyObject *label = sym_label(w, o);
    if (label == NULL || !PyUnicode_Check(label)) {
        if (!PyErr_Occurred()) PyErr_SetString(Fallback, "a symmetric value without a str label");
        return -1;
    }
    return tok(w, "") || put_str(w, label);
}

/* symmetry.leaked_name: the name of a value that the str s holds, or NULL (no error) */
static PyObject *leaked(walk_t *w, PyObject *s) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(s);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(w->names); i++) {
        PyObject *pair = PyTuple_GET_ITEM(w->names, i);
        PyObject *prefix = PyTuple_GET_ITEM(pair, 0);
        long long n = PyLong_AsLongLong(PyTuple_GET_ITEM(pair, 1));
        Py_ssize_t plen = PyUnicode_GET_LENGTH(prefix);
        Py_ssize_t start = PyUnicode_Find(s, prefix, 0, len, 1);
        while (start >= 0) {
            Py_ssize_t j = start + plen, k = j;
            while (k < len) {
                Py_UCS4 c = PyUnicode_READ_CHAR(s, k);
                if (c < '0' || c > '9') break;
                k++;
            }
            if (k > j && k - j <= 9) {
                long long v = 0;
                for (Py_ssize_t q = j; q < k; q++) v = v * 10 + (PyUnicode_READ_CHAR(s, q) - '0');
                if (v < n) return PyUnicode_Substring(s, start, k);
            }
            start = start + 1 < len ? PyUnicode_Find(s, prefix, start + 1, len, 1) : -1;
        }
        if (start == -2) return NULL;
    }
    return NULL;
}

static int check_str(walk_t *w, PyObject *s) {
    PyObject *name = leaked(w, s);
    if (name == NULL) return PyErr_Occurred() ? -1 : 0;
    PyObject *exc = PyObject_CallFunctionObjArgs(SymmetryLeak, s, name, NULL);
    Py_DECREF(name);
    if (exc != NULL) {
        PyErr_SetObject(SymmetryLeak, exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* symmetry.holds_value: a value, or a tuple or frozenset holding one */
static int holds_value(PyObject *o, int depth) {
    PyTypeObject *t = Py_TYPE(o);
    if (t == SymValueType) return 1;
    if (depth >= 100) return 0;
    if (t == &PyTuple_Type) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); i++)
            if (holds_value(PyTuple_GET_ITEM(o, i), depth + 1)) return 1;
        return 0;
    }
    if (t == &PyFrozenSet_Type) {
        Py_ssize_t pos = 0;
        Py_hash_t hash;
        PyObject *key;
        while (_PySet_NextEntry(o, &pos, &key, &hash))
            if (holds_value(key, depth + 1)) return 1;
    }
    return 0;
}

static int h(walk_t *w, PyObject *o);
struct uctx;
#define UNIT 64
static int units(walk_t *w, PyObject *o, Py_ssize_t lo, Py_ssize_t hi, const struct uctx *around, Py_ssize_t *pos);
static int note_object(walk_t *w, PyObject *o, PyTypeObject *t);
static int note_tuple(walk_t *w, PyObject *o);

/* ---- type names, as o.__module__ and o.__qualname__ of a type */

/* isinstance(o, X) is type(o)'s subclass test unless o's class answers __class__ itself */
static bool honest_class(PyTypeObject *t) {
    return t->tp_getattro == PyObject_GenericGetAttr && _PyType_Lookup(t, S_class) == ObjectClassDescr;
}

static int is_instance(PyObject *o, PyTypeObject *cls) {
    PyTypeObject *t = Py_TYPE(o);
    if (t == cls || PyType_IsSubtype(t, cls)) return 1;
    if (honest_class(t)) return 0;
    return PyObject_IsInstance(o, (PyObject *)cls);
}

/* type.__module__ and type.__qualname__ as type's own getters compute them, read in place:
   getattr would write the reference counts of the name strings */
static bool plain_type_names(PyObject *tp) {
    PyTypeObject *meta = Py_TYPE(tp);
    return meta == &PyType_Type ||
           (_PyType_Lookup(meta, S_module) == TypeModuleDescr && _PyType_Lookup(meta, S_qualname) == TypeQualnameDescr);
}

static int put_attr(walk_t *w, PyObject *o, PyObject *name) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL) return -1;
    int r = put_format(w, v);
    Py_DECREF(v);
    return r;
}

static int put_type_name(walk_t *w, PyObject *tp) {
    if (!plain_type_names(tp)) return put_attr(w, tp, S_module) || put(w, ".", 1) || put_attr(w, tp, S_qualname);
    PyTypeObject *t = (PyTypeObject *)tp;
    if (t->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        PyObject *mod = PyDict_GetItemWithError(t->tp_dict, S_module);
        if (mod == NULL) {
            if (PyErr_Occurred()) return -1;
            return put_attr(w, tp, S_module);  /* raises AttributeError, as the Python walk does */
        }
        return put_format(w, mod) || put(w, ".", 1) || put_format(w, ((PyHeapTypeObject *)t)->ht_qualname);
    }
    const char *dot = strrchr(t->tp_name, '.');
    if (dot == NULL) return put(w, "builtins.", 9) || put(w, t->tp_name, strlen(t->tp_name));
    return put(w, t->tp_name, strlen(t->tp_name));  /* "module.qualname" as written in tp_name */
}

/* ---- canonical keys and unordered collections */

typedef struct {
    const char *key;  /* canonical_key(obj), in the scratch arena */
    size_t keylen;
    PyObject *obj;    /* borrowed */
    PyObject *val;    /* borrowed, dicts only */
    Py_ssize_t index;
    const char *vkey; /* a symmetric dict's entries: canonical_key(val), or "" */
    size_t vkeylen;
} keyed_t;

static int set_key(walk_t *w, keyed_t *k, char prefix, const char *data, size_t n) {
    char *p = arena_alloc(w->scratch, n + 1);
    if (p == NULL) return -1;
    p[0] = prefix;
    memcpy(p + 1, data, n);
    k->key = p;
    k->keylen = n + 1;
    return 0;
}

/* _fingerprint.canonical_key: b"s" + UTF-8 for str, b"i" + str(n) for int and bool,
   the digest of a walk of its own for anything else */
static int canonical_key(walk_t *w, keyed_t *k, PyObject *o) {
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyUnicode_Type) {
        if (PyUnicode_IS_COMPACT_ASCII(o)) return set_key(w, k, 's', PyUnicode_DATA(o), (size_t)PyUnicode_GET_LENGTH(o));
        PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
        if (b == NULL) return -1;
        int r = set_key(w, k, 's', PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
        Py_DECREF(b);
        return r;
    }
    if (t == &PyBool_Type) return o == Py_True ? set_key(w, k, 'i', "True", 4) : set_key(w, k, 'i', "False", 5);
    if (t == &PyLong_Type) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) {
            char b[32];
            int n = snprintf(b, sizeof b, "%lld", v);
            return set_key(w, k, 'i', b, (size_t)n);
        }
        PyErr_Clear();
        PyObject *s = PyObject_Str(o);
        if (s == NULL) return -1;
        int r = set_key(w, k, 'i', PyUnicode_AsUTF8(s), (size_t)PyUnicode_GET_LENGTH(s));
        Py_DECREF(s);
        return r;
    }
    if (t == SymValueType) {  /* b"y" + its label */
        PyObject *label = sym_label(w, o);
        if (label == NULL) return -1;
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(label, &n);
        return u == NULL ? -1 : set_key(w, k, 'y', u, (size_t)n);
    }
    walk_t *sub = arena_alloc(w->scratch, sizeof *sub);  /* walk_t is big for the C stack of a deep walk */
    if (sub == NULL) return -1;
    walk_start(sub, w->scratch);
    inherit(sub, w);
    sub->key_mode = true;
    int r = h(sub, o);
    unsigned char d[16];
    if (!r) r = walk_digest(sub, d);
    walk_end(sub);
    if (r) return -1;
    char *p = arena_alloc(w->scratch, 16);
    if (p == NULL) return -1;
    memcpy(p, d, 16);
    k->key = p;
    k->keylen = 16;
    return 0;
}

static int shallow(walk_t *w, PyObject *o);
static int unordered_set(walk_t *w, const char *tag, PyObject *s);
static int enum_token(walk_t *w, PyObject *o, PyTypeObject *t);

/* _fingerprint.shallow_key: written into a walk of its own, then copied to the scratch arena */
static int shallow_key(walk_t *w, keyed_t *k, PyObject *o) {
    walk_t *sub = arena_alloc(w->scratch, sizeof *sub);
    if (sub == NULL) return -1;
    walk_start(sub, w->scratch);
    inherit(sub, w);
    sub->keep_stream = true;  /* the key is the stream itself */
    int r = shallow(sub, o) || close_tok(sub);
    char *p = r ? NULL : arena_alloc(w->scratch, sub->len ? sub->len : 1);
    if (p != NULL) {
        memcpy(p, sub->buf, sub->len);
        k->key = p;
        k->keylen = sub->len;
    }
    walk_end(sub);
    return p == NULL ? -1 : 0;
}

static int cmp_keyed(const void *a, const void *b) {
    const keyed_t *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->keylen < y->keylen ? x->keylen : y->keylen);
    if (c) return c;
    if (x->keylen != y->keylen) return x->keylen < y->keylen ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;  /* stable, as sorted() */
}

/* h.unordered(tag, items); in a key's walk, the sorted shallow keys stand for the elements */
static int unordered(walk_t *w, const char *tag, PyObject **items, Py_ssize_t n) {
    mark_t mark = arena_mark(w->scratch);
    keyed_t *k = arena_alloc(w->scratch, sizeof *k * (size_t)(n ? n : 1));
    int r = k == NULL;
    for (Py_ssize_t i = 0; !r && i < n; i++) {
        k[i].obj = items[i];
        k[i].index = i;
        r = w->key_mode ? shallow_key(w, &k[i], items[i]) : canonical_key(w, &k[i], items[i]);
    }
    if (!r) {
        qsort(k, (size_t)n, sizeof *k, cmp_keyed);
        r = tok_int(w, tag, n);
    }
    if (w->key_mode) {
        for (Py_ssize_t i = 0; !r && i < n; i++) r = tok(w, "") || put(w, k[i].key, k[i].keylen);
    } else if (!w->track) {
        for (Py_ssize_t i = 0; !r && i < n; i++) r = h(w, k[i].obj);
    } else {  /* each element a frame of the signature contexts, by its key (_Hasher.unordered) */
        uint64_t outer = w->ctx;
        Py_ssize_t base = w->base;
        uint64_t head = mix(mix(2, outer), (uint64_t)(w->ntok - 1 - base));
        for (Py_ssize_t i = 0; !r && i < n; i++) {
            w->ctx = mix(head, fnv64(k[i].key, k[i].keylen));
            w->base = w->ntok;
            r = h(w, k[i].obj);
        }
        w->ctx = outer;
        w->base = base;
    }
    arena_release(w->scratch, mark);
    return r;
}

/* _fingerprint.shallow_key's tokens: atoms as h writes them, tuples and frozensets of them,
   type and enum names; anything else its type's name.  No memo, no cycle. */
static int shallow(walk_t *w, PyObject *o) {
    PyTypeObject *t = Py_TYPE(o);
    if (o == Py_None || t == &PyBool_Type || t == &PyLong_Type || t == &PyUnicode_Type || t == &PyFloat_Type ||
        t == &PyComplex_Type || t == &PyBytes_Type || t == SymValueType)
        return h(w, o);
    if (++depth > MAX_DEPTH) {
        depth--;
        PyErr_SetString(Fallback, "state nested too deeply for the C walk");
        return -1;
    }
    int r;
    if (t == &PyTuple_Type) {
        Py_ssize_t n = PyTuple_GET_SIZE(o);
        r = tok_int(w, "(", n);
        for (Py_ssize_t i = 0; !r && i < n; i++) r = shallow(w, PyTuple_GET_ITEM(o, i));
    } else if (t == &PyFrozenSet_Type) {
        bool was = w->key_mode;
        w->key_mode = true;  /* unordered() then sorts shallow keys, as shallow_key sorts its parts */
        r = unordered_set(w, "F", o);
        w->key_mode = was;
    } else {
        int istype = is_instance(o, &PyType_Type), isenum = 0;
        if (istype < 0) r = -1;
        else if (istype) r = tok(w, "T") || put_type_name(w, o);
        else if ((isenum = is_instance(o, EnumBase)) < 0) r = -1;
        else if (isenum) r = enum_token(w, o, t);
        else r = tok(w, "t") || put_type_name(w, (PyObject *)t);
    }
    depth--;
    return r;
}

static int unordered_set(walk_t *w, const char *tag, PyObject *s) {
    Py_ssize_t n = PySet_GET_SIZE(s), pos = 0, i = 0;
    Py_hash_t hash;
    mark_t mark = arena_mark(w->scratch);
    PyObject *key, **items = arena_alloc(w->scratch, sizeof(PyObject *) * (size_t)(n ? n : 1));
    if (items == NULL) return -1;
    while (i < n && _PySet_NextEntry(s, &pos, &key, &hash)) items[i++] = key;
    int r = unordered(w, tag, items, i);
    arena_release(w->scratch, mark);
    return r;
}

static int cmp_entries(const void *a, const void *b) {
    const keyed_t *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->keylen < y->keylen ? x->keylen : y->keylen);
    if (c) return c;
    if (x->keylen != y->keylen) return x->keylen < y->keylen ? -1 : 1;
    c = memcmp(x->vkey, y->vkey, x->vkeylen < y->vkeylen ? x->vkeylen : y->vkeylen);
    if (c) return c;
    if (x->vkeylen != y->vkeylen) return x->vkeylen < y->vkeylen ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool same_key(const keyed_t *x, const keyed_t *y) {
    return x->keylen == y->keylen && memcmp(x->key, y->key, x->keylen) == 0;
}

/* _Hasher.symmetric_dict: entries by their keys' keys, then (ties, or contexts) their values' keys */
static int symmetric_dict(walk_t *w, PyObject *o, const char *name) {
    Py_ssize_t n = PyDict_GET_SIZE(o), pos = 0, m = 0;
    PyObject *key, *val;
    mark_t mark = arena_mark(w->scratch);
    keyed_t *k = arena_alloc(w->scratch, sizeof *k * (size_t)(n ? n : 1));
    if (k == NULL) return -1;
    int r = 0;
    while (!r && m < n && PyDict_Next(o, &pos, &key, &val)) {
        k[m].obj = key;
        k[m].val = val;
        k[m].index = m;
        k[m].vkey = "";
        k[m].vkeylen = 0;
        r = canonical_key(w, &k[m], key);
        m++;
    }
    for (Py_ssize_t i = 0; !r && i < m; i++) {
        bool need = w->track;
        for (Py_ssize_t j = 0; !need && j < m; j++) need = j != i && same_key(&k[i], &k[j]);
        if (need) {
            keyed_t v;
            r = canonical_key(w, &v, k[i].val);
            k[i].vkey = v.key;
            k[i].vkeylen = v.keylen;
        }
    }
    if (!r) {
        qsort(k, (size_t)m, sizeof *k, cmp_entries);
        r = tok(w, "{") || put(w, name, strlen(name)) || put_int(w, m);
    }
    if (!r && !w->track) {
        for (Py_ssize_t i = 0; !r && i < m; i++) r = h(w, k[i].obj) || h(w, k[i].val);
    } else if (!r) {
        uint64_t outer = w->ctx;
        Py_ssize_t base = w->base;
        uint64_t head = mix(mix(3, outer), (uint64_t)(w->ntok - 1 - base));
        for (Py_ssize_t i = 0; !r && i < m; i++) {
            w->ctx = mix(mix(head, fnv64(k[i].key, k[i].keylen)), fnv64(k[i].vkey, k[i].vkeylen));
            w->base = w->ntok;
            r = h(w, k[i].obj) || h(w, k[i].val);
        }
        w->ctx = outer;
        w->base = base;
    }
    arena_release(w->scratch, mark);
    return r;
}

/* in insertion order, as _Hasher.h walks a dict; under symmetry, a dict with a symmetric key by key */
static int walk_dict(walk_t *w, PyObject *o, const char *name) {
    Py_ssize_t n = PyDict_GET_SIZE(o), pos = 0;
    PyObject *key, *val;
    if (w->sym) {
        while (PyDict_Next(o, &pos, &key, &val))
            if (holds_value(key, 0)) return symmetric_dict(w, o, name);
        pos = 0;
    }
    if (tok(w, "{") || put(w, name, strlen(name)) || put_int(w, n)) return -1;
    if (n > UNIT && !w->key_mode && !w->labels && !w->names && !w->sym) return units(w, o, 0, n, w->unit, &pos);
    while (PyDict_Next(o, &pos, &key, &val))
        if (h(w, key) || h(w, val)) return -1;
    return 0;
}

/* ---- frames of generators and coroutines: _Hasher.frame */

#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
/* _PyFrame_OpAlreadyRan(frame, MAKE_CELL, i) (3.12), answered for the prologue only: true when
   the MAKE_CELL of slot i is among the instructions before RETURN_GENERATOR (which have no
   inline caches and no specialised forms).  A MAKE_CELL further on (an inlined comprehension's)
   is not looked for: the caller falls back. */
static bool made_cell_in_prologue(PyCodeObject *code, int i, int lasti) {
    const uint8_t *c = (const uint8_t *)code->co_code_adaptive;  /* code units: opcode, oparg */
    int arg = 0;
    for (int k = 0; k < lasti; k++) {
        int op = c[2 * k];
        arg |= c[2 * k + 1];
        if (op == FC_MAKE_CELL && arg == i) return true;
        if (op == FC_EXTENDED_ARG) arg <<= 8;
        else if (op == FC_MAKE_CELL || op == FC_COPY_FREE_VARS) arg = 0;
        else return false;
    }
    return false;
}
#endif

/* frame.f_locals[name of slot i] of a suspended generator frame, as each version computes it
   (3.11: _PyFrame_FastToLocalsWithError, 3.12: _PyFrame_GetLocals, 3.13: the FrameLocalsProxy's
   framelocalsproxy_getval): 1 and *value when the name has a value there, 0 when it is not in
   f_locals, -1 (Fallback set) when this walk cannot give exactly what Python would. */
static int frame_local(fc_iframe *f, PyCodeObject *code, int i, int lasti, PyObject **value) {
    unsigned char kind = ((const unsigned char *)PyBytes_AS_STRING(code->co_localspluskinds))[i];
    PyObject *v = f->localsplus[i];
    const char *why = NULL;
#if PY_VERSION_HEX < 0x030D0000
    if ((kind & FC_CO_FAST_FREE) && !(code->co_flags & CO_OPTIMIZED)) return 0;
    if (v == NULL) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (kind & FC_CO_FAST_HIDDEN) { why = "a hidden local (frame.f_locals would be a copy)"; goto fallback; }
#endif
    if (kind & FC_CO_FAST_FREE) {
        if (!PyCell_Check(v)) { why = "free variable without a cell"; goto fallback; }
        v = PyCell_GET(v);
    } else if ((kind & FC_CO_FAST_CELL) && PyCell_Check(v)) {
        /* MAKE_CELL and COPY_FREE_VARS run before RETURN_GENERATOR, so a cell slot holds its cell */
#if PY_VERSION_HEX >= 0x030C0000
        if (!made_cell_in_prologue(code, i, lasti)) { why = "a cell made after the prologue"; goto fallback; }
#endif
        v = PyCell_GET(v);
    }
#else
    (void)lasti;
    if (!(code->co_flags & CO_OPTIMIZED)) { why = "frame.f_locals of unoptimized code is a dict"; goto fallback; }
    if (v == NULL) return 0;
    if (kind & FC_CO_FAST_HIDDEN) { why = "a hidden local"; goto fallback; }
    if (kind == FC_CO_FAST_FREE || (kind & FC_CO_FAST_CELL)) {
        /* 3.13.0 reads such a slot as a cell whatever it holds; later 3.13s check */
        if (!PyCell_Check(v)) { why = "a cell slot without a cell"; goto fallback; }
        v = PyCell_GET(v);
    }
#endif
    if (v == NULL) return 0;  /* an empty cell: not in f_locals */
    *value = v;
    return 1;
fallback:
    PyErr_SetString(Fallback, why);
    return -1;
}

/* Whether frame.f_locals holds names besides the fast locals (assigned through it), or the
   frame holds a locals mapping gc.get_referents would list: then Fallback. */
static bool frame_has_other_locals(fc_iframe *f, PyCodeObject *code) {
#if PY_VERSION_HEX < 0x030D0000
    /* f_locals is the dict frame.f_locals returns, kept in the frame and updated in place: it
       may keep a name that is not a fast local */
    if (f->f_locals == NULL) return false;
    if (!PyDict_CheckExact(f->f_locals)) return true;
    Py_ssize_t pos = 0, n = PyTuple_GET_SIZE(code->co_localsplusnames);
    PyObject *key, *val;
    while (PyDict_Next(f->f_locals, &pos, &key, &val)) {
        Py_ssize_t i = 0;
        while (i < n && PyTuple_GET_ITEM(code->co_localsplusnames, i) != key) i++;
        if (i == n) return true;
    }
    return false;
#else
    /* f_locals stays NULL in an optimized frame; the frame object keeps the other names */
    return f->f_locals != NULL ||
           (f->frame_obj != NULL && ((fc_frameobject *)f->frame_obj)->f_extra_locals != NULL);
#endif
}

static int walk_frame(walk_t *w, PyObject *gen, PyObject *awaited_attr) {
    PyGenObject *g = (PyGenObject *)gen;
    fc_iframe *f = FC_GEN_IFRAME(g);
    PyCodeObject *code = (PyCodeObject *)FC_GEN_CODE(g);
    if (code == NULL || !PyCode_Check(code)) {
        PyErr_SetString(Fallback, "generator frame without a code object");
        return -1;
    }
    if (h(w, (PyObject *)code)) return -1;
    if (g->gi_frame_state >= FC_FRAME_CLEARED) return tok(w, "<finished>");
    int lasti = FC_IFRAME_LASTI(f, code);
    if (g->gi_frame_state >= 0) {
        PyErr_SetString(Fallback, "generator running or finishing");
        return -1;
    }
    if (lasti < 0 || FC_IFRAME_CODE(f) != (PyObject *)code || f->stacktop < code->co_nlocalsplus) {
        /* not a frame that reached RETURN_GENERATOR: frame.f_locals would initialise it */
        PyErr_SetString(Fallback, "generator frame before its first instruction");
        return -1;
    }
    if (frame_has_other_locals(f, code)) {
        PyErr_SetString(Fallback, "generator frame with locals besides its fast locals");
        return -1;
    }
    if (tok_int(w, "L", (long long)lasti * (long long)sizeof(fc_codeunit))) return -1;
    /* frame.f_locals: the named fast locals with a value, cells dereferenced */
    int n = code->co_nlocalsplus;
    mark_t mark = arena_mark(w->scratch);
    keyed_t *loc = arena_alloc(w->scratch, sizeof *loc * (size_t)(n ? n : 1));
    if (loc == NULL) return -1;
    Py_ssize_t m = 0;
    for (int i = 0; i < n; i++) {
        PyObject *v;
        int has = frame_local(f, code, i, lasti, &v);
        if (has < 0) {
            arena_release(w->scratch, mark);
            return -1;
        }
        if (!has) continue;
        loc[m].obj = PyTuple_GET_ITEM(code->co_localsplusnames, i);
        loc[m].val = v;
        loc[m].index = m;
        m++;
    }
    /* sorted(loc): names are str, compared by code point */
    for (Py_ssize_t i = 1; i < m; i++) {
        keyed_t x = loc[i];
        Py_ssize_t j = i - 1;
        while (j >= 0 && PyUnicode_Compare(loc[j].obj, x.obj) > 0) { loc[j + 1] = loc[j]; j--; }
        loc[j + 1] = x;
    }
    int r = tok_int(w, "l", m);
    for (Py_ssize_t i = 0; !r && i < m; i++) r = tok(w, "") || put_str(w, loc[i].obj) || h(w, loc[i].val);
    arena_release(w->scratch, mark);
    if (r) return -1;
    /* gc.get_referents(gen) less f_locals, the code and frames: gen_traverse's order */
    PyObject *refs[8];
    int nr = 0;
    /* async_gen_traverse visits the finalizer first (the event loop's hook, once it iterated it) */
    PyObject *fin = Py_TYPE(gen) == &PyAsyncGen_Type ? g->gi_origin_or_finalizer : NULL;
    if (fin && fin != (PyObject *)code && Py_TYPE(fin) != &PyFrame_Type) refs[nr++] = fin;
    PyObject *head[] = {g->gi_name, g->gi_qualname, FC_IFRAME_FUNC(f)};
    for (int i = 0; i < 3; i++)
        if (head[i] && head[i] != (PyObject *)code && Py_TYPE(head[i]) != &PyFrame_Type) refs[nr++] = head[i];
    Py_ssize_t stack = 0;
    for (int i = 0; i < f->stacktop; i++) {
        PyObject *x = f->localsplus[i];
        if (x && x != (PyObject *)code && x != f->f_locals && Py_TYPE(x) != &PyFrame_Type) stack++;
    }
    PyObject *exc = g->gi_exc_state.exc_value;
    bool has_exc = exc && exc != (PyObject *)code && exc != f->f_locals && Py_TYPE(exc) != &PyFrame_Type;
    if (tok_int(w, "r", nr + stack + has_exc)) return -1;
    for (int i = 0; i < nr; i++)
        if (h(w, refs[i])) return -1;
    for (int i = 0; i < f->stacktop; i++) {
        PyObject *x = f->localsplus[i];
        if (x && x != (PyObject *)code && x != f->f_locals && Py_TYPE(x) != &PyFrame_Type && h(w, x)) return -1;
    }
    if (has_exc && h(w, exc)) return -1;
    PyObject *aw = PyObject_GetAttr(gen, awaited_attr);
    if (aw == NULL) return -1;
    if (keep(w, Py_NewRef(aw))) { Py_DECREF(aw); return -1; }
    r = h(w, aw);
    Py_DECREF(aw);
    return r;
}

/* ---- __reduce_ex__: _Hasher.reduced */

/* The instance dict of o: 1 and *dict (maybe NULL: none yet) when it can be read without
   making one, 0 when CPython keeps o's attributes in a values array not yet made a dict. */
static int instance_dict(PyObject *o, PyObject **dict) {
    PyTypeObject *t = Py_TYPE(o);
    if (t->tp_flags & FC_MANAGED_DICT) {
#if PY_VERSION_HEX < 0x030C0000
        /* 3.11: the values pointer at -4, the dict pointer at -3 (Include/internal/pycore_object.h) */
        if (((void **)o)[-4] != NULL) return 0;
        *dict = ((PyObject **)o)[-3];
#elif PY_VERSION_HEX < 0x030D0000
        /* 3.12: PyDictOrValues at -3, a values pointer when its low bit is set */
        PyObject *dv = ((PyObject **)o)[-3];
        if ((uintptr_t)dv & 1) return 0;
        *dict = dv;
#else
        /* 3.13: _PyObject_ManagedDictPointer at -3; without a dict, a type with inline values
           may keep attributes in them */
        PyObject *d = ((PyObject **)o)[-3];
        if (d == NULL && (t->tp_flags & FC_INLINE_VALUES)) return 0;
        *dict = d;
#endif
        return 1;
    }
    if (t->tp_dictoffset == 0) { *dict = NULL; return 1; }
    if (t->tp_dictoffset < 0) return 0;
    *dict = *(PyObject **)((char *)o + t->tp_dictoffset);
    return 1;
}

/* o.__reduce_ex__(4) of an instance of a plain class (no pickling methods of its own, no
   slots, no extra C fields) is (copyreg.__newobj__, (type(o),), o.__dict__ or None, None,
   None): walked here as the Python walk walks it, without calling into Python.  Returns 1
   when done, 0 when o is not such an instance. */
static int plain_reduce(walk_t *w, PyObject *o, PyTypeObject *t) {
    if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE) || t->tp_new == NULL || t->tp_itemsize != 0 ||
        t->tp_getattro != PyObject_GenericGetAttr || PyList_Check(o) || PyDict_Check(o))
        return 0;
    if (_PyType_Lookup(t, S_reduce_ex) != ObjReduceEx || _PyType_Lookup(t, S_reduce) != ObjReduce ||
        _PyType_Lookup(t, S_getstate) != ObjGetstate || _PyType_Lookup(t, S_getnewargs_ex) != NULL ||
        _PyType_Lookup(t, S_getnewargs) != NULL)
        return 0;
    /* copyreg._slotnames caches __slotnames__ in the class at the first reduce: until then, Python's */
    PyObject *slotnames = PyDict_GetItemWithError(t->tp_dict, S_slotnames);
    if (slotnames == NULL) { PyErr_Clear(); return 0; }
    if (slotnames != Py_None && !(PyList_CheckExact(slotnames) && PyList_GET_SIZE(slotnames) == 0)) return 0;
    Py_ssize_t basic = PyBaseObject_Type.tp_basicsize;
    if (t->tp_dictoffset && !(t->tp_flags & FC_MANAGED_DICT)) basic += sizeof(PyObject *);
    if (t->tp_weaklistoffset > 0) basic += sizeof(PyObject *);  /* 3.12+: a managed weaklist is outside */
    if (t->tp_basicsize > basic) return 0;  /* "cannot pickle": Python's walk says so */
    PyObject *dict;
    if (!instance_dict(o, &dict)) return 0;
    if (dict != NULL) {
        if (!PyDict_CheckExact(dict)) return 0;
        PyObject *names[] = {S_reduce_ex, S_reduce, S_getstate};
        for (int i = 0; i < 3; i++) {
            if (PyDict_GetItemWithError(dict, names[i]) != NULL) return 0;
            if (PyErr_Occurred()) PyErr_Clear();
        }
        if (PyDict_GET_SIZE(dict) == 0) dict = NULL;
    }
    if (tok(w, "N") || put_type_name(w, (PyObject *)t) || tok_int(w, "(", 0)) return -1;
    return h(w, dict ? dict : Py_None) ? -1 : 1;
}

static int walk_reduced(walk_t *w, PyObject *o, PyTypeObject *t) {
    int plain = plain_reduce(w, o, t);
    if (plain) return plain < 0 ? -1 : 0;
    PyObject *rv = PyObject_CallMethod(o, "__reduce_ex__", "i", 4);
    if (rv == NULL) {
        /* never the object's identity instead: a fork keeps every address (see _Hasher.reduced) */
        if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        PyErr_NormalizeException(&et, &ev, &etb);
        PyObject *exc = PyObject_CallFunctionObjArgs(Opaque, o, ev ? ev : Py_None, NULL);
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(etb);
        if (exc != NULL) {
            PyErr_SetObject(Opaque, exc);
            Py_DECREF(exc);
        }
        return -1;
    }
    if (keep(w, Py_NewRef(rv))) { Py_DECREF(rv); return -1; }
    Py_DECREF(rv);  /* kept alive by the keep list */
    if (PyUnicode_Check(rv)) return tok(w, "g") || put_format(w, rv);
    Py_ssize_t len = PyObject_Length(rv);
    if (len < 0) return -1;
    PyObject *fn = PySequence_GetItem(rv, 0);
    if (fn == NULL || keep(w, fn)) return -1;
    PyObject *args;
    if (len > 1) {
        if ((args = PySequence_GetItem(rv, 1)) == NULL || keep(w, args)) return -1;
    } else {
        args = PyTuple_New(0);
        if (args == NULL || keep(w, args)) return -1;
    }
    int newobj = fn == NewObj;
    if (!newobj) {
        PyObject *name = PyObject_GetAttr(fn, S_dunder_name);
        if (name == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
            PyErr_Clear();
        } else {
            newobj = PyObject_RichCompareBool(name, S_newobj, Py_EQ);
            Py_DECREF(name);
            if (newobj < 0) return -1;
        }
    }
    if (newobj) {
        if (tok(w, "N") || put_type_name(w, (PyObject *)t)) return -1;
        PyObject *rest = PySequence_GetSlice(args, 1, PY_SSIZE_T_MAX);
        if (rest == NULL || keep(w, rest)) return -1;
        args = rest;
    } else if (h(w, fn)) {
        return -1;
    }
    if (h(w, args)) return -1;
    if (len > 2) {
        PyObject *state = PySequence_GetItem(rv, 2);
        if (state == NULL || keep(w, state) || h(w, state)) return -1;
    } else if (h(w, Py_None)) {
        return -1;
    }
    if (len > 3) {
        PyObject *li = PySequence_GetItem(rv, 3);
        if (li == NULL || keep(w, li)) return -1;
        if (li != Py_None) {
            if (tok(w, "li")) return -1;
            PyObject *it = PyObject_GetIter(li);
            if (it == NULL) return -1;
            PyObject *x;
            while ((x = PyIter_Next(it)) != NULL) {
                if (keep(w, x) || h(w, x)) { Py_DECREF(it); return -1; }
            }
            Py_DECREF(it);
            if (PyErr_Occurred()) return -1;
        }
    }
    if (len > 4) {
        PyObject *di = PySequence_GetItem(rv, 4);
        if (di == NULL || keep(w, di)) return -1;
        if (di != Py_None) {
            if (tok(w, "di")) return -1;
            PyObject *d = PyObject_CallOneArg((PyObject *)&PyDict_Type, di);
            if (d == NULL || keep(w, d) || h(w, d)) return -1;
        }
    }
    return 0;
}

/* E<module>.<qualname>.<name> */
static int enum_token(walk_t *w, PyObject *o, PyTypeObject *t) {
    /* Enum.name returns _name_; read it without calling the property */
    PyObject *name = _PyType_Lookup(t, S_name) == EnumNameDescr ? PyObject_GenericGetAttr(o, S_name_)
                                                                 : PyObject_GetAttr(o, S_name);
    if (name == NULL) return -1;
    int r = tok(w, "E") || put_type_name(w, (PyObject *)t) || put(w, ".", 1) || put_format(w, name);
    Py_DECREF(name);
    return r;
}

static int is_dunder(PyObject *name);

/* _fingerprint.class_attrs(cls): a new dict */
static PyObject *class_attrs(PyObject *cls) {
    PyObject *own = ((PyTypeObject *)cls)->tp_dict, *ref = NULL, *k, *a;  /* borrowed: no count written */
#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12+: a static builtin type keeps its dict in the interpreter (tp_dict NULL) */
    if (own == NULL && (own = ref = PyType_GetDict((PyTypeObject *)cls)) == NULL) return NULL;
#endif
    PyObject *attrs = PyDict_New();
    Py_ssize_t p = 0;
    while (attrs && PyDict_Next(own, &p, &k, &a)) {
        if (is_dunder(k) || PyCallable_Check(a)) continue;
        if (PyObject_TypeCheck(a, &PyClassMethod_Type) || PyObject_TypeCheck(a, &PyStaticMethod_Type) ||
            PyObject_TypeCheck(a, &PyProperty_Type)) continue;
        if (PyDict_SetItem(attrs, k, a)) Py_CLEAR(attrs);
    }
    Py_XDECREF(ref);
    return attrs;
}

/* T<module>.<qualname>; a class the model's code made (<locals> in its name): _Hasher.local_class */
static int walk_type(walk_t *w, PyObject *o) {
    if (tok(w, "T") || put_type_name(w, o)) return -1;
    if (!PyType_Check(o) || !(((PyTypeObject *)o)->tp_flags & Py_TPFLAGS_HEAPTYPE)) return 0;
    bool plain = plain_type_names(o);  /* then read the name in place: a new reference writes its count */
    PyObject *q = plain ? ((PyHeapTypeObject *)o)->ht_qualname : PyObject_GetAttr(o, S_qualname);
    if (q == NULL) return -1;
    Py_ssize_t local = PyUnicode_Check(q) ? PyUnicode_Find(q, S_locals, 0, PyUnicode_GET_LENGTH(q), 1) : -1;
    if (!plain) Py_DECREF(q);
    if (local == -2) return -1;
    if (local < 0) return 0;
    Py_ssize_t seen = memo_get(&w->memo, o);
    if (seen >= 0) return backref(w, seen);
    if (memo_put(w, o, w->nobj++)) return -1;
    if (w->open_units) w->reusable = false;  /* a class: not plain data */
    PyObject *attrs = class_attrs(o);
    if (attrs == NULL || keep(w, attrs)) return -1;
    return h(w, attrs);
}

/* ---- the dispatch: _Hasher.h */

static int h_mutable(walk_t *w, PyObject *o, PyTypeObject *t);

static int h_inner(walk_t *w, PyObject *o) {
    PyTypeObject *t = Py_TYPE(o);
    if (o == Py_None) return tok(w, "NNone");
    if (t == &PyBool_Type) return tok(w, o == Py_True ? "bTrue" : "bFalse");
    if (t == &PyLong_Type || t == &PyFloat_Type || t == &PyComplex_Type || t == &PyBytes_Type) return put_atom(w, o, t);
    if (t == &PyUnicode_Type) {
        if (w->names && check_str(w, o)) return -1;
        return put_atom(w, o, t);
    }
    if (w->open_units && w->caching) {  /* what a cached unit may hold: atoms, tuples, lists, bytearrays */
        if (t == &PyTuple_Type) {
            if (note_tuple(w, o)) return -1;
        } else if (t != &PyList_Type && t != &PyByteArray_Type && t != &PyDict_Type) w->reusable = false;
    }
    if (t == SymValueType) return sym_value(w, o);
    if (t == &PyTuple_Type) {
        Py_ssize_t n = PyTuple_GET_SIZE(o);
        if (tok_int(w, "(", n)) return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (h(w, PyTuple_GET_ITEM(o, i))) return -1;
        return 0;
    }
    if (t == &PyFrozenSet_Type) return unordered_set(w, "F", o);
    if (t == UnorderedType) {
        PyObject *items = PyObject_GetAttr(o, S_items);
        if (items == NULL || keep(w, items)) return -1;
        if (!PyList_CheckExact(items)) { PyErr_SetString(Fallback, "Unordered.items is not a list"); return -1; }
        return unordered(w, "U", ((PyListObject *)items)->ob_item, PyList_GET_SIZE(items));
    }
    int istype = is_instance(o, &PyType_Type);
    if (istype < 0) return -1;
    if (istype) return walk_type(w, o);
    if (t == &PyModule_Type) {
        PyObject *name = PyObject_GetAttr(o, S_dunder_name);
        if (name == NULL) return -1;
        int r = tok(w, "M") || put_format(w, name);
        Py_DECREF(name);
        return r;
    }
    if (t == &PyCode_Type) {
        PyCodeObject *c = (PyCodeObject *)o;
        Py_ssize_t at = PyUnicode_FindChar(c->co_filename, '/', 0, PyUnicode_GET_LENGTH(c->co_filename), -1);
        if (at == -2) return -1;
        PyObject *base = PyUnicode_Substring(c->co_filename, at + 1, PyUnicode_GET_LENGTH(c->co_filename));
        if (base == NULL) return -1;
        int r = tok(w, "C") || put_str(w, base) || put(w, ":", 1) || put_str(w, c->co_qualname) || put(w, ":", 1)
                || put_int(w, c->co_firstlineno);
        Py_DECREF(base);
        return r;
    }
    if (t == &PyFrame_Type) return tok(w, "f");
    Py_ssize_t seen = memo_get(&w->memo, o);
    if (seen >= 0) return backref(w, seen);
    if (memo_put(w, o, w->nobj++)) return -1;
    if (w->open_units && w->caching && note_object(w, o, t)) return -1;
    if (!w->track) return h_mutable(w, o, t);
    /* a frame of the signature contexts: the object's number (_Hasher.h) */
    uint64_t ctx = w->ctx;
    Py_ssize_t base = w->base;
    w->ctx = mix(1, (uint64_t)(w->nobj - 1));
    w->base = w->ntok;
    int r = h_mutable(w, o, t);
    w->ctx = ctx;
    w->base = base;
    return r;
}

/* ---- units: _Hasher.units and _Hasher.unit */

/* The keys object of a dict (Include/internal/pycore_dict.h, the same in 3.11, 3.12 and 3.13 without
   the free-threaded build's mutex): where a combined table's entries lie, to know their pages. */
typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind;  /* 0 general (hash, key, value), 1 str keys (key, value), 2 split */
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
} fc_dictkeys;

/* a dict whose entries are its table's first ma_used (no deleted one before) and hold their
   values (a combined table): entry i lies at dict_entry(o, i) */
static bool dict_plain(PyObject *o) {
#ifdef Py_GIL_DISABLED
    return false;
#else
    PyDictObject *d = (PyDictObject *)o;
    fc_dictkeys *k = (fc_dictkeys *)d->ma_keys;
    return Py_TYPE(o) == &PyDict_Type && d->ma_values == NULL && k->dk_kind != 2 && k->dk_nentries == d->ma_used;
#endif
}

static char *dict_entry(PyObject *o, Py_ssize_t i) {
    fc_dictkeys *k = (fc_dictkeys *)((PyDictObject *)o)->ma_keys;
    size_t esz = k->dk_kind == 0 ? 3 * sizeof(PyObject *) : 2 * sizeof(PyObject *);
    return k->dk_indices + ((size_t)1 << k->dk_log2_index_bytes) + (size_t)i * esz;
}

/* what identifies the items of a unit's container: a list's array, a plain dict's keys object */
static void *unit_ident(PyObject *o, Py_ssize_t hi) {
    if (PyList_CheckExact(o)) return hi <= PyList_GET_SIZE(o) ? (void *)((PyListObject *)o)->ob_item : NULL;
    if (PyDict_CheckExact(o) && dict_plain(o) && hi <= PyDict_GET_SIZE(o)) return ((PyDictObject *)o)->ma_keys;
    return NULL;
}

/* ---- the cache of units (docs/design.md, "Units"): what a snapshot's walk computed, inherited
   by its children through fork.  A unit of a list (the list, its first and last item) is reused
   when the pages everything in it lies on were not written since the fork and it was valid in
   the walk before (this process's, or its parent's before the fork: the generation counts walks
   down a line of processes).  Valid in that walk means: reused or computed there (its gen), or
   inside a unit that was valid there and holding it when that one was computed (the computed
   generation of the unit around it).  It holds plain data only (atoms, tuples, lists,
   bytearrays), each object referenced once: so nothing outside the unit can reach into it, and
   its tokens do not depend on what the walk met before it. */

typedef struct {
    PyObject *list;          /* the key: the list, the first item and the end of the unit */
    Py_ssize_t lo, hi;
    void *items;             /* the list's ob_item, the dict's keys object (unit_ident) when computed */
    unsigned char digest[16];
    Py_ssize_t nobj;         /* objects numbered inside it */
    uint64_t gen, computed;  /* last reused or computed; computed */
    PyObject *plist;         /* the unit it was computed inside (its key), or NULL */
    Py_ssize_t plo, phi;
    uint64_t *runs;          /* nruns pairs (first page, pages): where its objects lie */
    Py_ssize_t nruns;
} centry;

static struct {
    centry *slots;
    Py_ssize_t cap, used;
    arena_t runs;            /* never freed piecemeal: the cache starts over when it holds too much */
    size_t runbytes;
    uint64_t gen;            /* walks down this line of processes, this one included */
    int pagemap;             /* /proc/self/pagemap of pid, or -1 */
    pid_t pid;
    bool off;                /* FORKCHECK_FULL_WALK=1, or pagemap cannot be read */
    Py_ssize_t reused, computed;  /* units, in the last walk (cache_info) */
} cache = {NULL, 0, 0, {NULL, NULL}, 0, 1, -1, 0, false, 0, 0};  /* gen 0 marks an entry never to reuse */

#define CACHE_RUN_BYTES (64u << 20)
#define PAGE_SHIFT_FC 12

static size_t centry_slot(PyObject *l, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t cap) {
    uint64_t x = (uint64_t)(uintptr_t)l * 0x9E3779B97F4A7C15ULL ^ (uint64_t)lo * 0xBF58476D1CE4E5B9ULL ^ (uint64_t)hi;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 29;
    return (size_t)x & (size_t)(cap - 1);
}

static centry *cache_find(PyObject *l, Py_ssize_t lo, Py_ssize_t hi) {
    if (!cache.cap) return NULL;
    size_t mask = (size_t)cache.cap - 1, i = centry_slot(l, lo, hi, cache.cap);
    while (cache.slots[i].list) {
        centry *e = &cache.slots[i];
        if (e->list == l && e->lo == lo && e->hi == hi) return e;
        i = (i + 1) & mask;
    }
    return NULL;
}

static void cache_clear(void) {
    if (cache.slots) munmap(cache.slots, (size_t)cache.cap * sizeof(centry));
    cache.slots = NULL;
    cache.cap = cache.used = 0;
    arena_free(&cache.runs);
    cache.runbytes = 0;
}

/* the slot for (l, lo, hi), made when missing; NULL when memory ran out (the unit is just not cached) */
static centry *cache_slot(PyObject *l, Py_ssize_t lo, Py_ssize_t hi) {
    centry *e = cache_find(l, lo, hi);
    if (e) return e;
    if ((cache.used + 1) * 2 > cache.cap) {
        Py_ssize_t cap = cache.cap ? cache.cap * 2 : 4096;
        centry *n = mmap(NULL, (size_t)cap * sizeof(centry), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (n == MAP_FAILED) return NULL;
        for (Py_ssize_t k = 0; k < cache.cap; k++)
            if (cache.slots[k].list) {
                size_t i = centry_slot(cache.slots[k].list, cache.slots[k].lo, cache.slots[k].hi, cap);
                while (n[i].list) i = (i + 1) & (size_t)(cap - 1);
                n[i] = cache.slots[k];
            }
        if (cache.slots) munmap(cache.slots, (size_t)cache.cap * sizeof(centry));
        cache.slots = n;
        cache.cap = cap;
    }
    size_t mask = (size_t)cache.cap - 1, i = centry_slot(l, lo, hi, cache.cap);
    while (cache.slots[i].list) i = (i + 1) & mask;
    cache.used++;
    e = &cache.slots[i];
    memset(e, 0, sizeof *e);
    e->list = l;
    e->lo = lo;
    e->hi = hi;
    return e;
}

/* 1 when every page of the runs is still shared with the parent (pagemap bit 56 clear) and
   present; 0 when one was written since the fork, or cannot be told; -1 with an error set */
static int runs_clean(const uint64_t *runs, Py_ssize_t nruns) {
    pid_t pid = getpid();
    if (cache.pid != pid) {  /* an inherited descriptor reads the parent's pagemap */
        if (cache.pagemap >= 0) close(cache.pagemap);
        cache.pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        cache.pid = pid;
        if (cache.pagemap < 0) { cache.off = true; return 0; }
    }
    uint64_t buf[512];
    for (Py_ssize_t r = 0; r < nruns; r++) {
        uint64_t first = runs[2 * r], n = runs[2 * r + 1];
        while (n) {
            size_t k = n < 512 ? (size_t)n : 512;
            ssize_t got = pread(cache.pagemap, buf, k * 8, (off_t)(first * 8));
            if (got != (ssize_t)(k * 8)) return 0;
            for (size_t i = 0; i < k; i++)
                if (!(buf[i] >> 63 & 1) || (buf[i] >> 56 & 1)) return 0;  /* absent, or written (exclusive) */
            first += k;
            n -= k;
        }
    }
    return 1;
}

static int note_range(walk_t *w, const void *start, size_t len) {
    if (!len) return 0;
    uint64_t a = (uint64_t)(uintptr_t)start >> PAGE_SHIFT_FC, b = ((uint64_t)(uintptr_t)start + len - 1) >> PAGE_SHIFT_FC;
    for (uint64_t p = a; p <= b; p++) {
        if (w->npages == w->pagecap) {
            Py_ssize_t cap = w->pagecap ? w->pagecap * 2 : 1024;
            uint64_t *n = arena_alloc(&w->own, (size_t)cap * sizeof(uint64_t));
            if (n == NULL) return -1;
            if (w->npages) memcpy(n, w->pages, (size_t)w->npages * sizeof(uint64_t));
            w->pages = n;
            w->pagecap = cap;
        }
        w->pages[w->npages++] = p;
    }
    return 0;
}

/* an object met inside an open unit at its first visit: where it lies, and whether a cached unit may hold it */
static int note_object(walk_t *w, PyObject *o, PyTypeObject *t) {
    if (Py_REFCNT(o) != 1) w->reusable = false;
    if (t == &PyList_Type)
        return note_range(w, o, sizeof(PyListObject)) ||
               note_range(w, ((PyListObject *)o)->ob_item, (size_t)PyList_GET_SIZE(o) * sizeof(PyObject *));
    if (t == &PyByteArray_Type)
        return note_range(w, o, sizeof(PyByteArrayObject)) ||
               note_range(w, PyByteArray_AS_STRING(o), (size_t)PyByteArray_GET_SIZE(o));
    if (t == &PyDict_Type && dict_plain(o)) {  /* its header, and its keys object up to its last entry */
        char *keys = (char *)((PyDictObject *)o)->ma_keys;
        return note_range(w, o, sizeof(PyDictObject)) ||
               note_range(w, keys, (size_t)(dict_entry(o, PyDict_GET_SIZE(o)) - keys));
    }
    w->reusable = false;
    return 0;
}

static int note_tuple(walk_t *w, PyObject *o) {
    if (Py_REFCNT(o) != 1) w->reusable = false;
    return note_range(w, o, offsetof(PyTupleObject, ob_item) + (size_t)PyTuple_GET_SIZE(o) * sizeof(PyObject *));
}

static int cmp_page(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* the runs of pages[from:], sorted and merged, into the cache's arena */
static uint64_t *make_runs(walk_t *w, Py_ssize_t from, Py_ssize_t *nruns) {
    Py_ssize_t n = w->npages - from;
    uint64_t *p = w->pages + from;
    qsort(p, (size_t)n, sizeof *p, cmp_page);
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!k || p[i] != p[i - 1]) k++;  /* distinct pages: at most k runs */
    uint64_t *runs = arena_alloc(&cache.runs, (size_t)(k ? k : 1) * 2 * sizeof(uint64_t));
    if (runs == NULL) return NULL;
    Py_ssize_t r = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (r && p[i] < runs[2 * (r - 1)] + runs[2 * (r - 1) + 1]) continue;  /* a page already in the run */
        if (r && p[i] == runs[2 * (r - 1)] + runs[2 * (r - 1) + 1]) { runs[2 * (r - 1) + 1]++; continue; }
        runs[2 * r] = p[i];
        runs[2 * r + 1] = 1;
        r++;
    }
    cache.runbytes += (size_t)r * 2 * sizeof(uint64_t);
    *nruns = r;
    return runs;
}

/* An open unit, for the units inside it: its key, and whether its entry was valid in the walk
   before and computed when (the entries it held then are valid with it). */
struct uctx {
    PyObject *list;
    Py_ssize_t lo, hi;
    bool valid;
    uint64_t computed;
};
typedef struct uctx uctx;



/* A unit: replaced by the digest of its tokens when no back-reference inside it names an object
   numbered before it (_Hasher.unit).  ``valid``/``computed``: the unit around it was valid in the
   walk before, and was computed in that generation (its units then valid with it). */
static int unit(walk_t *w, PyObject *o, Py_ssize_t lo, Py_ssize_t hi, const uctx *around, Py_ssize_t *pos) {
    if (close_tok(w)) return -1;
    void *items = unit_ident(o, hi);  /* NULL: not to be cached (a dict with holes, a split table) */
    centry *old = w->caching ? cache_find(o, lo, hi) : NULL;
    uctx me = {o, lo, hi, false, 0};
    if (old && items && old->items == items) {
        /* valid in the walk before: reused or computed there, or computed inside this very unit
           around it when that one was, and that one valid then (a list moved from one unit to
           another, or out of the state and back, is computed again) */
        me.valid = old->gen == cache.gen - 1 ||
                   (around && around->valid && old->gen == around->computed && old->plist == around->list &&
                    old->plo == around->lo && old->phi == around->hi);
        me.computed = old->computed;
        if (me.valid) {
            int clean = runs_clean(old->runs, old->nruns);
            if (clean < 0) return -1;
            if (clean) {  /* reused: its digest, its objects counted, its pages for the units around it */
                cache.reused++;
                old->gen = cache.gen;
                if (pos) *pos = hi;  /* a plain dict: entry i is the i-th */
                w->nobj += old->nobj;
                if (w->open_units)  /* the unit around it depends on them too */
                    for (Py_ssize_t r = 0; r < old->nruns; r++)
                        for (uint64_t p = 0; p < old->runs[2 * r + 1]; p++)
                            if (note_range(w, (void *)(uintptr_t)((old->runs[2 * r] + p) << PAGE_SHIFT_FC), 1)) return -1;
                return tok(w, "\x07") || put(w, (const char *)old->digest, 16);
            }
        }
    }
    size_t start = w->len;  /* nothing is hashed while a unit is open: the offset stays valid */
    Py_ssize_t base = w->nobj, outer = w->minref, pages_from = w->npages;
    bool outer_reusable = w->reusable;
    const uctx *outer_unit = w->unit;
    w->minref = PY_SSIZE_T_MAX;
    w->reusable = true;
    w->unit = &me;
    w->open_units++;
    int r = 0;
    if (!items) w->reusable = false;
    else if (w->caching)
        r = pos ? note_range(w, dict_entry(o, lo), (size_t)(dict_entry(o, hi) - dict_entry(o, lo)))
                : note_range(w, (PyObject **)items + lo, (size_t)(hi - lo) * sizeof(PyObject *));
    if (r) {
    } else if (hi - lo > UNIT) r = units(w, o, lo, hi, &me, pos);
    else if (pos) {
        PyObject *key, *val;
        for (Py_ssize_t i = lo; !r && i < hi; i++) {
            if (!PyDict_Next(o, pos, &key, &val)) {  /* a hook of the walk shortened the dict */
                PyErr_SetString(Fallback, "a dict changed while the walk read it");
                r = -1;
            } else r = h(w, key) || h(w, val);
        }
    } else
        for (Py_ssize_t i = lo; !r && i < hi; i++) {
            if (i >= PyList_GET_SIZE(o)) {  /* a hook of the walk shortened the list */
                PyErr_SetString(Fallback, "a list changed while the walk read it");
                r = -1;
            } else r = h(w, PyList_GET_ITEM(o, i));
        }
    if (!r) r = close_tok(w);  /* still open: its last token's length must not be hashed away */
    w->open_units--;
    w->unit = outer_unit;
    Py_ssize_t inner = w->minref;
    bool reusable = w->reusable;
    w->minref = inner < outer ? inner : outer;
    w->reusable = outer_reusable && reusable;
    if (r || inner < base) {
        if (old) old->gen = 0;  /* not valid in this walk: never reused after it */
        if (!w->open_units) w->npages = pages_from;
        return r;
    }
    unsigned char d[16];
    blake2b16(d, (const unsigned char *)w->buf + start, w->len - start);
    w->len = start;
    if (w->caching) {
        bool same = items && unit_ident(o, hi) == items;  /* not moved by a hook while walked */
        centry *e = reusable && same ? cache_slot(o, lo, hi) : old;
        if (e && reusable && same) {
            Py_ssize_t nruns;
            uint64_t *runs = make_runs(w, pages_from, &nruns);
            if (runs == NULL) { PyErr_Clear(); e->gen = 0; }
            else {
                cache.computed++;
                e->items = items;
                memcpy(e->digest, d, 16);
                e->nobj = w->nobj - base;
                e->gen = e->computed = cache.gen;
                e->plist = around ? around->list : NULL;
                e->plo = around ? around->lo : 0;
                e->phi = around ? around->hi : 0;
                e->runs = runs;
                e->nruns = nruns;
            }
        } else if (e) e->gen = 0;
        if (!w->open_units) w->npages = pages_from;  /* no unit around it needs its pages */
    }
    return tok(w, "\x07") || put(w, (const char *)d, 16);
}

/* items lo to hi (more than UNIT) of a list, or entries of a dict (``pos``: its PyDict_Next cursor) */
static int units(walk_t *w, PyObject *o, Py_ssize_t lo, Py_ssize_t hi, const uctx *around, Py_ssize_t *pos) {
    Py_ssize_t span = UNIT;
    while (span * UNIT < hi - lo) span *= UNIT;
    for (Py_ssize_t a = lo; a < hi; a += span)
        if (unit(w, o, a, a + span < hi ? a + span : hi, around, pos)) return -1;
    return 0;
}

/* _Hasher.mutable: an object with identity at its first visit, numbered already */
static int h_mutable(walk_t *w, PyObject *o, PyTypeObject *t) {
    if (t == &PyList_Type) {
        Py_ssize_t n = PyList_GET_SIZE(o);
        if (tok_int(w, "[", n)) return -1;
        if (n > UNIT && !w->key_mode && !w->labels && !w->names && !w->sym) {
            return units(w, o, 0, n, w->unit, NULL);  /* a list nested in a unit: its units inside that one */
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(o); i++)
            if (h(w, PyList_GET_ITEM(o, i))) return -1;
        return 0;
    }
    if (t == &PyDict_Type) return walk_dict(w, o, "dict");
    if (t == DefaultDictType) {
        PyObject *df = ((fc_defdict *)o)->default_factory;
        return h(w, df ? df : Py_None) || walk_dict(w, o, "defaultdict");
    }
    if (t == CounterType) return walk_dict(w, o, "Counter");
    if (t == &PySet_Type) return unordered_set(w, "S", o);
    if (t == DequeType) {
        fc_deque *d = (fc_deque *)o;
        Py_ssize_t n = Py_SIZE(d);
        if (tok(w, "Q")) return -1;
        if (d->maxlen < 0 ? put(w, "None", 4) : put_int(w, d->maxlen)) return -1;
        if (put(w, ":", 1) || put_int(w, n)) return -1;
        fc_block *b = d->leftblock;
        Py_ssize_t idx = d->leftindex;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (h(w, b->data[idx])) return -1;
            if (++idx == FC_BLOCKLEN) { b = b->rightlink; idx = 0; }
        }
        return 0;
    }
    if (t == &PyByteArray_Type) return put_atom(w, o, t);  /* its content; its identity is numbered already */
    if (t == &PyCoro_Type) return walk_frame(w, o, S_cr_await);
    if (t == &PyGen_Type) return walk_frame(w, o, S_gi_yieldfrom);
    if (t == &PyAsyncGen_Type) return walk_frame(w, o, S_ag_await);
    if (t == &PyFunction_Type) {
        PyFunctionObject *f = (PyFunctionObject *)o;
        PyObject *parts[] = {f->func_code, f->func_defaults, f->func_kwdefaults, f->func_closure};
        for (int i = 0; i < 4; i++)
            if (h(w, parts[i] ? parts[i] : Py_None)) return -1;
        return 0;
    }
    if (t == &PyCell_Type) {
        PyObject *v = PyCell_GET(o);
        return v ? h(w, v) : tok(w, "<empty>");
    }
    if (t == &PyMethod_Type) return h(w, PyMethod_GET_FUNCTION(o)) || h(w, PyMethod_GET_SELF(o));
    if (t == &PyCFunction_Type) {
        PyObject *q = PyObject_GetAttr(o, S_qualname);
        if (q == NULL) return -1;
        int r = tok(w, "b") || put_format(w, q);
        Py_DECREF(q);
        if (r) return -1;
        PyObject *s = PyCFunction_GET_SELF(o);
        if (s != NULL && s != Py_None && Py_TYPE(s) != &PyModule_Type) return h(w, s);
        return 0;
    }
    int isenum = is_instance(o, EnumBase);
    if (isenum < 0) return -1;
    if (isenum) return enum_token(w, o, t);
    /* a function that gives the state of t's objects (register_state, _reducers.py) */
    PyObject *reducer = PyDict_GetItemWithError(ReducerCache, (PyObject *)t);
    if (reducer == NULL) {
        if (PyErr_Occurred()) return -1;
        reducer = PyObject_CallOneArg(ResolveReducer, (PyObject *)t);
        if (reducer == NULL || keep(w, reducer)) return -1;  /* kept: the cache may be cleared meanwhile */
    }
    if (reducer != Py_None) {
        if (tok(w, "R") || put_type_name(w, (PyObject *)t)) return -1;
        PyObject *state = PyObject_CallOneArg(reducer, o);
        if (state == NULL || keep(w, Py_NewRef(state))) { Py_XDECREF(state); return -1; }
        int r = h(w, state);
        Py_DECREF(state);
        return r;
    }
    /* getattr(type(o), "__fc_state__", None): looked up without getattr when the metaclass has no
       attribute hooks of its own (getattr would make and clear an AttributeError for most objects) */
    if (Py_TYPE(t)->tp_getattro != PyType_Type.tp_getattro || _PyType_Lookup(t, S_fc_state) != NULL ||
        _PyType_Lookup(Py_TYPE(t), S_fc_state) != NULL) {
        PyObject *hook = PyObject_GetAttr((PyObject *)t, S_fc_state);
        if (hook == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
            PyErr_Clear();
        } else if (hook != Py_None) {
            PyObject *q = PyObject_GetAttr((PyObject *)t, S_qualname);
            int r = q == NULL || tok(w, "H") || put_format(w, q);
            Py_XDECREF(q);
            if (r) { Py_DECREF(hook); return -1; }
            PyObject *state = PyObject_CallOneArg(hook, o);
            Py_DECREF(hook);
            if (state == NULL || keep(w, Py_NewRef(state))) { Py_XDECREF(state); return -1; }
            r = h(w, state);
            Py_DECREF(state);
            return r;
        } else {
            Py_DECREF(hook);
        }
    }
    return walk_reduced(w, o, t);
}

static int h(walk_t *w, PyObject *o) {
    if (++depth > MAX_DEPTH) {
        depth--;
        PyErr_SetString(Fallback, "state nested too deeply for the C walk");
        return -1;
    }
    int r = h_inner(w, o);
    depth--;
    return r;
}

/* ---- _global_items(g) walked as in state_fingerprint: name, then value */

static int is_dunder(PyObject *name) {
    if (!PyUnicode_Check(name)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);  /* startswith("__") and endswith("__") */
    return n >= 2 && PyUnicode_READ_CHAR(name, 0) == '_' && PyUnicode_READ_CHAR(name, 1) == '_' &&
           PyUnicode_READ_CHAR(name, n - 1) == '_' && PyUnicode_READ_CHAR(name, n - 2) == '_';
}

static int walk_globals(walk_t *w, PyObject *g) {
    if (!PyDict_CheckExact(g)) { PyErr_SetString(Fallback, "globals are not a dict"); return -1; }
    Py_ssize_t n = PyDict_GET_SIZE(g), pos = 0, m = 0;
    PyObject *key, *val;
    mark_t mark = arena_mark(w->scratch);
    keyed_t *items = arena_alloc(w->scratch, sizeof *items * (size_t)(n ? n : 1));
    if (items == NULL) return -1;
    while (m < n && PyDict_Next(g, &pos, &key, &val)) {
        if (!PyUnicode_CheckExact(key)) {
            arena_release(w->scratch, mark);
            PyErr_SetString(Fallback, "a global whose name is not a str");
            return -1;
        }
        items[m].obj = key;
        items[m].val = val;
        m++;
    }
    for (Py_ssize_t i = 1; i < m; i++) {  /* sorted(g) */
        keyed_t x = items[i];
        Py_ssize_t j = i - 1;
        while (j >= 0 && PyUnicode_Compare(items[j].obj, x.obj) > 0) { items[j + 1] = items[j]; j--; }
        items[j + 1] = x;
    }
    PyObject *modname = PyDict_GetItemWithError(g, S_dunder_name);
    int r = 0;
    for (Py_ssize_t i = 0; !r && i < m; i++) {
        PyObject *name = items[i].obj, *v = items[i].val;
        if (is_dunder(name)) continue;
        int ismod = is_instance(v, &PyModule_Type);
        if (ismod < 0) { r = -1; break; }
        if (ismod) continue;
        if (tok(w, "") || put_str(w, name)) { r = -1; break; }
        int istype = is_instance(v, &PyType_Type);
        if (istype < 0) { r = -1; break; }
        if (istype) {
            PyObject *vm = PyObject_GetAttr(v, S_module);
            if (vm == NULL) { r = -1; break; }
            int same = PyObject_RichCompareBool(vm, modname ? modname : Py_None, Py_EQ);
            Py_DECREF(vm);
            if (same < 0) { r = -1; break; }
            istype = same;
        }
        if (!istype) { r = h(w, v); continue; }
        /* a class of the model's own module: (class, {its mutable class attributes}) */
        PyObject *attrs = class_attrs(v);
        if (attrs == NULL || keep(w, attrs)) { r = -1; break; }
        r = tok_int(w, "(", 2) || h(w, v) || h(w, attrs);
    }
    arena_release(w->scratch, mark);
    return r;
}

/* ------------------------------------------------------------------ the Python type */

static int Walker_init(WalkerObject *self, PyObject *args, PyObject *kw) {
    int keep_stream = 0;
    static char *kwlist[] = {"keep_stream", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:Walker", kwlist, &keep_stream)) return -1;
    if (Fallback == NULL) { PyErr_SetString(PyExc_RuntimeError, "_cfingerprint.configure() was not called (a bug)"); return -1; }
    walk_end(&self->w);
    arena_free(&self->scratch);
    walk_start(&self->w, &self->scratch);
    self->w.keep_stream = keep_stream;
    /* A walk of its own in this line of processes: the cache's entries valid in the one before.
       Sound because a process changes no state between its last walk and its forks (a snapshot
       is frozen once it reported; Eval and Describe run in throwaway forks). */
    const char *full = getenv("FORKCHECK_FULL_WALK");
    self->w.caching = !cache.off && !(full && *full && strcmp(full, "0"));
    cache.reused = cache.computed = 0;
    if (self->w.caching) {
        cache.gen++;
        if (cache.runbytes > CACHE_RUN_BYTES) cache_clear();
    }
    return 0;
}

static void Walker_dealloc(WalkerObject *self) {
    Py_CLEAR(self->labels);
    Py_CLEAR(self->names);
    arena_free(&self->subown);
    walk_end(&self->w);
    arena_free(&self->scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Walker_emit(WalkerObject *self, PyObject *s) {
    if (!PyUnicode_Check(s)) { PyErr_SetString(PyExc_TypeError, "emit() takes a str"); return NULL; }
    if (tok(&self->w, "") || put_str(&self->w, s)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Walker_h(WalkerObject *self, PyObject *o) {
    if (h(&self->w, o)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Walker_globals(WalkerObject *self, PyObject *g) {
    if (walk_globals(&self->w, g)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Walker_digest(WalkerObject *self, PyObject *unused) {
    unsigned char d[16];
    if (walk_digest(&self->w, d)) return NULL;
    return PyBytes_FromStringAndSize((const char *)d, 16);
}

static PyObject *Walker_stream(WalkerObject *self, PyObject *unused) {
    if (!self->w.keep_stream) {
        PyErr_SetString(PyExc_RuntimeError, "stream(): this walker hashed its stream as it went; make it with Walker(keep_stream=True)");
        return NULL;
    }
    if (close_tok(&self->w)) return NULL;
    return PyBytes_FromStringAndSize(self->w.buf ? self->w.buf : "", (Py_ssize_t)self->w.len);
}

/* symmetry(labels, names, sym, track): _Hasher's arguments of the same names */
static PyObject *Walker_symmetry(WalkerObject *self, PyObject *args) {
    PyObject *labels, *names;
    int sym, track;
    if (!PyArg_ParseTuple(args, "OOpp:symmetry", &labels, &names, &sym, &track)) return NULL;
    if (SymValueType == NULL) { PyErr_SetString(PyExc_RuntimeError, "configure_symmetry() was not called (a bug)"); return NULL; }
    if (labels != Py_None && !PyTuple_CheckExact(labels)) { PyErr_SetString(PyExc_TypeError, "labels: a tuple or None"); return NULL; }
    if (!PyTuple_CheckExact(names)) { PyErr_SetString(PyExc_TypeError, "names: a tuple"); return NULL; }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *pair = PyTuple_GET_ITEM(names, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyLong_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "names: ((str, int), ...)");
            return NULL;
        }
    }
    Py_XSETREF(self->labels, labels == Py_None ? NULL : Py_NewRef(labels));
    Py_XSETREF(self->names, PyTuple_GET_SIZE(names) ? Py_NewRef(names) : NULL);
    walk_t *w = &self->w;
    w->labels = self->labels;
    w->names = self->names;
    w->sym = sym;
    w->track = track && self->labels != NULL;
    if (w->track && sigs_alloc(w, PyTuple_GET_SIZE(self->labels))) return NULL;
    Py_RETURN_NONE;
}

/* key(obj): canonical_key(obj) with this walk's labels */
static PyObject *Walker_key(WalkerObject *self, PyObject *o) {
    mark_t mark = arena_mark(&self->scratch);
    keyed_t k;
    PyObject *r = NULL;
    if (!canonical_key(&self->w, &k, o)) r = PyBytes_FromStringAndSize(k.key, (Py_ssize_t)k.keylen);
    arena_release(&self->scratch, mark);
    return r;
}

/* actor(key, obj): _Hasher.actor, a walk of obj of its own over a copy of the memo, its contexts tied to its digest */
static PyObject *Walker_actor(WalkerObject *self, PyObject *args) {
    const char *key;
    Py_ssize_t keylen;
    PyObject *o;
    if (!PyArg_ParseTuple(args, "y#O:actor", &key, &keylen, &o)) return NULL;
    walk_t *w = &self->w;
    if (!w->track) { PyErr_SetString(PyExc_RuntimeError, "actor() outside a walk of signatures (a bug)"); return NULL; }
    mark_t mark = arena_mark(&self->scratch);
    walk_t *sub = arena_alloc(&self->scratch, sizeof *sub);
    if (sub == NULL) return NULL;
    walk_start(sub, &self->scratch);
    sub->own = self->subown;
    inherit(sub, w);
    sub->track = true;
    int r = sigs_alloc(sub, w->nsigs);
    sub->nobj = w->nobj;
    if (!r && w->memo.cap) {  /* the memo, copied: new objects are numbered after the shared ones */
        memo_t m = {arena_alloc(&sub->own, (size_t)w->memo.cap * sizeof(PyObject *)), NULL, w->memo.cap, w->memo.used};
        if (m.keys == NULL || (m.vals = arena_alloc(&sub->own, (size_t)w->memo.cap * sizeof(Py_ssize_t))) == NULL) r = -1;
        else {
            memcpy(m.keys, w->memo.keys, (size_t)w->memo.cap * sizeof(PyObject *));
            memcpy(m.vals, w->memo.vals, (size_t)w->memo.cap * sizeof(Py_ssize_t));
            sub->memo = m;
        }
    }
    sub->ctx = mix(4, fnv64(key, (size_t)keylen));
    if (!r) r = h(sub, o);
    if (!r) {
        unsigned char d[16];
        r = walk_digest(sub, d);
        uint64_t tag = fnv64((const char *)d, 16);
        for (Py_ssize_t k = 0; !r && k < sub->nsigs; k++)
            for (Py_ssize_t i = 0; !r && i < sub->sigs[k].n; i++) r = sig_add(w, k, mix(tag, sub->sigs[k].v[i]));
    }
    Py_CLEAR(sub->keep);
    arena_release(&sub->own, (mark_t){NULL, 0});  /* every chunk to the spare list, for the next actor */
    self->subown = sub->own;
    arena_release(&self->scratch, mark);
    if (r) return NULL;
    Py_RETURN_NONE;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* signatures(): _Hasher.signatures */
static PyObject *Walker_signatures(WalkerObject *self, PyObject *unused) {
    walk_t *w = &self->w;
    PyObject *out = PyList_New(w->track ? w->nsigs : 0);
    if (out == NULL || !w->track) return out;
    for (Py_ssize_t k = 0; k < w->nsigs; k++) {
        sigvec_t *s = &w->sigs[k];
        if (s->n) qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_u64);
        uint64_t acc = 0;
        for (Py_ssize_t i = 0; i < s->n; i++) acc = mix(acc, s->v[i]);
        PyObject *x = PyLong_FromUnsignedLongLong(acc);
        if (x == NULL) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, k, x);
    }
    return out;
}

static PyMethodDef Walker_methods[] = {
    {"emit", (PyCFunction)Walker_emit, METH_O, "Append one token."},
    {"h", (PyCFunction)Walker_h, METH_O, "Walk one object."},
    {"globals", (PyCFunction)Walker_globals, METH_O, "Walk a module's globals as state_fingerprint does."},
    {"digest", (PyCFunction)Walker_digest, METH_NOARGS, "The 16-byte BLAKE2b digest of the tokens."},
    {"stream", (PyCFunction)Walker_stream, METH_NOARGS, "The tokens joined by \\x1f, encoded (for tests)."},
    {"symmetry", (PyCFunction)Walker_symmetry, METH_VARARGS, "symmetry(labels, names, sym, track): as _Hasher's."},
    {"key", (PyCFunction)Walker_key, METH_O, "canonical_key(obj) with this walk's labels."},
    {"actor", (PyCFunction)Walker_actor, METH_VARARGS, "actor(key, obj): _Hasher.actor."},
    {"signatures", (PyCFunction)Walker_signatures, METH_NOARGS, "_Hasher.signatures."},
    {NULL},
};

static PyTypeObject WalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "forkcheck._app._cfingerprint.Walker",
    .tp_basicsize = sizeof(WalkerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Walker_init,
    .tp_dealloc = (destructor)Walker_dealloc,
    .tp_methods = Walker_methods,
    .tp_doc = "The fingerprint walk of _fingerprint._Hasher, reading objects without writing them.",
};

static PyObject *configure(PyObject *mod, PyObject *args) {
    PyObject *deque, *dd, *counter, *unord, *en;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO!O:configure", &Fallback, &deque, &dd, &counter, &unord, &en, &NewObj,
                          &Opaque, &PyDict_Type, &ReducerCache, &ResolveReducer))
        return NULL;
    PyObject *objs[] = {Fallback, deque, dd, counter, unord, en, NewObj, Opaque, ReducerCache, ResolveReducer};
    for (int i = 0; i < 10; i++) Py_INCREF(objs[i]);
    DequeType = (PyTypeObject *)deque;
    DefaultDictType = (PyTypeObject *)dd;
    CounterType = (PyTypeObject *)counter;
    UnorderedType = (PyTypeObject *)unord;
    EnumBase = (PyTypeObject *)en;
    EnumNameDescr = _PyType_Lookup(EnumBase, S_name);
    Py_XINCREF(EnumNameDescr);
    Py_RETURN_NONE;
}

/* configure_symmetry(SymmetricValue, SymmetryLeak) */
static PyObject *configure_symmetry(PyObject *mod, PyObject *args) {
    PyObject *cls, *leak;
    if (!PyArg_ParseTuple(args, "O!O:configure_symmetry", &PyType_Type, &cls, &leak)) return NULL;
    const char *slots[] = {"_k", "_tok"};
    Py_ssize_t *offsets[] = {&SymK_offset, &SymTok_offset};
    for (int i = 0; i < 2; i++) {
        PyObject *d = PyObject_GetAttrString(cls, slots[i]);
        if (d == NULL) return NULL;
        if (Py_TYPE(d) != &PyMemberDescr_Type) {
            Py_DECREF(d);
            PyErr_SetString(PyExc_TypeError, "SymmetricValue's slots are not member descriptors");
            return NULL;
        }
        *offsets[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
    }
    Py_INCREF(cls);
    Py_INCREF(leak);
    SymValueType = (PyTypeObject *)cls;
    SymmetryLeak = leak;
    Py_RETURN_NONE;
}

static PyObject *cache_info(PyObject *mod, PyObject *unused) {
    return Py_BuildValue("{s:n,s:n,s:n,s:K,s:O}", "reused", cache.reused, "computed", cache.computed, "entries", cache.used,
                         "generation", (unsigned long long)cache.gen, "off", cache.off ? Py_True : Py_False);
}

static PyObject *blake2b16_py(PyObject *mod, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE)) return NULL;
    unsigned char d[16];
    blake2b16(d, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)d, 16);
}

static PyMethodDef module_methods[] = {
    {"cache_info", cache_info, METH_NOARGS, "The units the last walk reused and computed, the cache's size (for tests)."},
    {"blake2b16", blake2b16_py, METH_O, "BLAKE2b with a 16-byte digest, as the walk hashes (for tests)."},
    {"configure", configure, METH_VARARGS, "Hand over the Python objects the walk compares against."},
    {"configure_symmetry", configure_symmetry, METH_VARARGS, "Hand over SymmetricValue and SymmetryLeak."},
    {NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "forkcheck._app._cfingerprint", NULL, -1, module_methods};

PyMODINIT_FUNC PyInit__cfingerprint(void) {
    struct { PyObject **slot; const char *s; } names[] = {
        {&S_fc_state, "__fc_state__"}, {&S_reduce_ex, "__reduce_ex__"}, {&S_module, "__module__"},
        {&S_name, "name"}, {&S_qualname, "__qualname__"}, {&S_newobj, "__newobj__"},
        {&S_items, "items"}, {&S_reduce, "__reduce__"}, {&S_getstate, "__getstate__"}, {&S_getnewargs_ex, "__getnewargs_ex__"}, {&S_getnewargs, "__getnewargs__"}, {&S_slotnames, "__slotnames__"}, {&S_name_, "_name_"}, {&S_class, "__class__"}, {&S_cr_await, "cr_await"}, {&S_gi_yieldfrom, "gi_yieldfrom"}, {&S_ag_await, "ag_await"},
        {&S_dunder_name, "__name__"}, {&S_locals, "<locals>"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].s)) == NULL) return NULL;
    ObjectClassDescr = _PyType_Lookup(&PyBaseObject_Type, S_class);
    Py_XINCREF(ObjectClassDescr);
    PyObject **objm[] = {&ObjReduceEx, &ObjReduce, &ObjGetstate};
    PyObject *objn[] = {S_reduce_ex, S_reduce, S_getstate};
    for (int i = 0; i < 3; i++) {
        *objm[i] = _PyType_Lookup(&PyBaseObject_Type, objn[i]);
        if (*objm[i] == NULL) { PyErr_SetString(PyExc_ImportError, "object lacks a pickling method"); return NULL; }
        Py_INCREF(*objm[i]);
    }
    TypeModuleDescr = _PyType_Lookup(&PyType_Type, S_module);
    Py_XINCREF(TypeModuleDescr);
    TypeQualnameDescr = _PyType_Lookup(&PyType_Type, S_qualname);
    Py_XINCREF(TypeQualnameDescr);
    if (PyType_Ready(&WalkerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&WalkerType);
    if (PyModule_AddObject(m, "Walker", (PyObject *)&WalkerType) < 0) return NULL;
    return m;
}
