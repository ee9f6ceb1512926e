/*
 * The state store in an nginx shared memory zone (agentgov_zone), and what of
 * it must outlive a restart (agentgov_state).
 *
 * The zone follows limit_req and ssl_session_cache: a slab pool whose data is
 * one shared struct; every operation runs under the slab pool's own mutex
 * (the master force-unlocks it when a worker dies holding it); a reload with
 * the same name and size keeps the memory and init_zone takes the old data.
 *
 * A task is one slab allocation: the links, the fixed fields, then its
 * strings packed behind them, so that no half of a record can exist. Records
 * are indexed three ways:
 *
 *   tasks    rbtree by crc32(id), then the id bytes: lookups, and the stable
 *            order of lists;
 *   expiry   rbtree by expiry time (for an ended or revoked task, the expiry
 *            it had); past it, a record moves to the dead queue, in expiry
 *            order, and lingers NGX_HTTP_AGENTGOV_LINGER seconds so that its
 *            id answers "expired" (or "ended", "revoked") rather than
 *            "unknown"; then it is freed;
 *   children each record's descendants hang off its children queue, so that
 *            ending a task ends its subtree without a scan.
 *
 * Agents have small records of their own while they have live tasks or are
 * suspended: the live count behind max_tasks and the suspended flag. A few
 * free agent records are kept in reserve so that a suspension works even in
 * a zone that live tasks have filled.
 *
 * A record counts as live (towards its agent's max_tasks and the zone's live
 * figure) from its insertion until it ends, is revoked, or leaves the expiry
 * tree. Expired live records are noticed lazily: a bounded batch on each
 * operation, and all of them when an agent is at its limit or memory is
 * short. Memory is never found by dropping a live task.
 *
 * agentgov_state: live tasks, suspended agents and the stop flag are written
 * to a JSON file (budget spends are saved with the next write). A change that
 * takes authority away (ending or revoking a task, renewing it shorter,
 * suspending an agent, stopping everyone) is on disk before the call that
 * made it returns: a restart never lifts a kill switch nor revives an ended
 * task. A change that only gives or extends authority (a declaration, a
 * renewal, resume, start) just bumps the zone's generation; every worker's
 * save timer (cancelable, so that an old worker still exits) writes the
 * file when the generation is ahead of the one on disk, at most once a
 * second across all workers, and so does a worker's exit. A crash loses at
 * most about the last second of those, which fails closed: a lost
 * declaration is refused as unknown, a lost renewal expires earlier, a lost
 * resume or start leaves the agent suspended or everyone stopped. The
 * timers compare generations kept in the zone, so changes left by a worker
 * that died or exited, or made before a reload, are written by whichever
 * worker comes next.
 *
 * A write is a binary snapshot taken under the zone's lock, encoded and
 * written (FILE.tmp, fsync, rename, fsync of the directory) outside it, so
 * the directory must be writable by the worker processes' user. Writers are
 * serialized by flock() on FILE.lock (released by the kernel if a worker
 * dies, and shared by every process, even those of an old zone after a
 * reload that changed the zone's size). A synchronous writer waits for the
 * lock, then writes unless its holder already saved the change; a timer
 * that finds it taken tries again at its next tick.
 *
 * The file is loaded whenever a zone is created (start, restart, a reload
 * that changes the zone's size, and "nginx -t"), in the master, before the
 * workers that will use the zone exist. A malformed file fails start-up and
 * "nginx -t": starting with suspensions silently lifted would fail open. At
 * a reload that changes the zone's size, the master first writes what the
 * old zone holds and the file does not yet (it still maps the old zone), so
 * that the new zone starts with it and the old workers are left nothing to
 * write over the new zone's file. A restart or a reload with a different
 * zone size therefore loses nothing but the calls counted since the last
 * write.
 */

#include <sys/file.h>

#include <openssl/crypto.h>

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"


#define NGX_HTTP_AGENTGOV_ZONE_VERSION   0x61670006  /* "ag", layout 6 */
#define NGX_HTTP_AGENTGOV_ZONE_MIN       (64 * 1024)
#define NGX_HTTP_AGENTGOV_STATE_VERSION  1

/* holds whose closing a worker can catch up on (ids, per zone) */
#define NGX_HTTP_AGENTGOV_CLOSED_RING    256

/* how long a record stays after its expiry, seconds */
#define NGX_HTTP_AGENTGOV_LINGER         300

/* expired records handled per operation, to keep lock sections short */
#define NGX_HTTP_AGENTGOV_EXPIRE_BATCH   256
#define NGX_HTTP_AGENTGOV_EXPIRE_ALL     ((ngx_uint_t) -1)

#define NGX_HTTP_AGENTGOV_DEPTH_MAX      64
#define NGX_HTTP_AGENTGOV_ID_MAX         AG_TASK_ID_LEN  /* list cursors */
#define NGX_HTTP_AGENTGOV_NAME_MAX       255     /* a byte's length */
#define NGX_HTTP_AGENTGOV_STRS_MAX       8192    /* all strings of a task */

/*
 * Agent records kept aside for suspensions: the kill switch must work in a
 * zone that live tasks have filled. Each is big enough for any agent name.
 */
#define NGX_HTTP_AGENTGOV_RESERVE        8
#define NGX_HTTP_AGENTGOV_RESERVE_SIZE                                        \
    (offsetof(ngx_http_agentgov_agent_t, name) + NGX_HTTP_AGENTGOV_NAME_MAX)

/*
 * Deferred writes (ms): each worker's save timer looks this often, writes
 * at most this often across all workers (a write takes about 100 ms with
 * 60,000 live tasks), and after a failed write tries again this late.
 */
#define NGX_HTTP_AGENTGOV_SAVE_TICK      250
#define NGX_HTTP_AGENTGOV_SAVE_DELAY     1000
#define NGX_HTTP_AGENTGOV_SAVE_RETRY     10000

/* ngx_http_agentgov_state_save(): wait for FILE.lock, or leave it */
#define NGX_HTTP_AGENTGOV_SAVE_WAIT      1
#define NGX_HTTP_AGENTGOV_SAVE_NOWAIT    0


/*
 * The strings of a task, in the order they are packed: first those whose
 * length fits in a byte (names, ids, the thumbprint), then the rest.
 */
enum {
    NGX_HTTP_AGENTGOV_S_ID = 0,
    NGX_HTTP_AGENTGOV_S_AGENT,
    NGX_HTTP_AGENTGOV_S_OWNER,
    NGX_HTTP_AGENTGOV_S_INTENT,
    NGX_HTTP_AGENTGOV_S_PARENT,
    NGX_HTTP_AGENTGOV_S_CNF,
    NGX_HTTP_AGENTGOV_S_TOOLS,
    NGX_HTTP_AGENTGOV_S_CHAIN,
    NGX_HTTP_AGENTGOV_S_PURPOSE,
    NGX_HTTP_AGENTGOV_NSTR
};

#define NGX_HTTP_AGENTGOV_NSTR8  NGX_HTTP_AGENTGOV_S_TOOLS


/*
 * A task's fields, position independent: copied as they are (with the
 * strings behind them) into snapshots, lists and task_get buffers. Every
 * byte counts: a typical task (names of a dozen characters, two tools, no
 * purpose) then fits a 256-byte slab chunk rather than a 512-byte one.
 */
typedef struct {
    int64_t                          granted;
    int64_t                          expires;
    int64_t                          ended;
    int64_t                          calls;
    int64_t                          bucket_mtok;
    int64_t                          bucket_ms;
    u_short                          len16[NGX_HTTP_AGENTGOV_NSTR
                                           - NGX_HTTP_AGENTGOV_NSTR8];
    u_char                           len8[NGX_HTTP_AGENTGOV_NSTR8];
    u_char                           depth;
    u_char                           state;      /* ag_task_state_t */
    u_char                           dead;       /* on the dead queue */
    u_char                           counted;    /* in its agent's live */
    u_char                           str[1];
} ngx_http_agentgov_task_data_t;

#define ngx_http_agentgov_len(d, i)                                           \
    ((size_t) ((i) < NGX_HTTP_AGENTGOV_NSTR8                                  \
               ? (d)->len8[i] : (d)->len16[(i) - NGX_HTTP_AGENTGOV_NSTR8]))


typedef struct {
    ngx_rbtree_node_t                node;       /* key: crc32(name) */
    ngx_uint_t                       live;
    u_short                          len;
    u_char                           suspended;
    u_char                           name[1];
} ngx_http_agentgov_agent_t;


typedef struct {
    ngx_rbtree_node_t                node;       /* key: crc32(id) */

    /* in exactly one of the two: the expiry tree until expires, then the
       dead queue */
    union {
        ngx_rbtree_node_t            node;       /* key: expires */
        ngx_queue_t                  queue;
    } exp;

    ngx_queue_t                      children;
    ngx_queue_t                      sibling;    /* in the parent's children */

    ngx_http_agentgov_task_data_t    d;          /* last: strings follow */
} ngx_http_agentgov_task_node_t;


typedef struct {
    ngx_uint_t                       version;
    size_t                           size;

    ngx_rbtree_t                     tasks;
    ngx_rbtree_node_t                tasks_sentinel;
    ngx_rbtree_t                     expiry;
    ngx_rbtree_node_t                expiry_sentinel;
    ngx_queue_t                      dead;
    ngx_rbtree_t                     agents;
    ngx_rbtree_node_t                agents_sentinel;

    ngx_uint_t                       records;    /* task records */
    ngx_uint_t                       live;       /* counted live tasks */
    ngx_uint_t                       ended;      /* ended or revoked, not
                                                    yet past their expiry */
    ngx_uint_t                       suspended;  /* suspended agents */
    ngx_uint_t                       stopped;

    size_t                           live_bytes; /* their snapshot sizes */
    size_t                           susp_bytes;

    void                            *reserve;    /* free agent records */
    ngx_uint_t                       nreserve;

    uint64_t                         gen;        /* changes worth saving */
    uint64_t                         saved_gen;
    uint32_t                         saved_path; /* crc32 of the file */
    uint32_t                         conf_path;  /* of the last config */
    ngx_msec_t                       saved_at;   /* ngx_current_msec */
    ngx_uint_t                       save_failed;

    time_t                           full_logged;

    ngx_http_agentgov_audit_head_t   audit;
    ngx_http_agentgov_metrics_t      metrics;

    ngx_rbtree_t                     holds;      /* ngx_str_node_t by id */
    ngx_rbtree_node_t                holds_sentinel;
    ngx_queue_t                      holds_queue;   /* oldest first */
    ngx_uint_t                       nholds;
    ngx_uint_t                       pending;
    ngx_uint_t                       decisions;  /* bumped on each close */
    /* the ids of the last holds closed: closed[decisions % RING] is the
       latest, so that a worker wakes what closed instead of looking at
       everything it holds */
    u_char                           closed[NGX_HTTP_AGENTGOV_CLOSED_RING]
                                           [AG_TASK_ID_LEN];

    ngx_rbtree_t                     sessions;   /* MCP, by session id */
    ngx_rbtree_node_t                sessions_sentinel;
    ngx_queue_t                      sessions_queue;   /* oldest first */
    ngx_rbtree_t                     pins;       /* MCP, by tool NUL name */
    ngx_rbtree_node_t                pins_sentinel;
    ngx_queue_t                      pins_queue;
    ngx_uint_t                       npins;
    size_t                           pins_bytes; /* their snapshot sizes */
} ngx_http_agentgov_sh_t;


/*
 * A hold: the id's node, the queue, the fixed part, then its strings. The
 * decisions and the decision reason are allocated when they come, at their
 * size: a pending hold is a few hundred bytes, not room for eight people.
 */
typedef struct {
    ngx_str_node_t                   sn;         /* str: the id */
    ngx_queue_t                      queue;
    ngx_pid_t                        pid;
    int64_t                          requested;
    int64_t                          expires;
    int64_t                          closed;
    int64_t                          grant_ttl;
    ngx_uint_t                       used;
    ngx_uint_t                       unrecorded; /* cancelled, no record yet */
    ag_hold_state_t                  state;
    ngx_uint_t                       nvotes;
    ag_hold_vote_t                  *votes;      /* nvotes, or NULL */
    u_char                          *reason;     /* the decision's, or NULL */
    u_short                          len[NGX_HTTP_AGENTGOV_H_N];
    u_char                           str[1];
} ngx_http_agentgov_hold_node_t;

/* a closed hold stays this long (s) so that its outcome can be read */
#define NGX_HTTP_AGENTGOV_HOLD_LINGER    600
#define NGX_HTTP_AGENTGOV_HOLD_REASON    512


struct ngx_http_agentgov_store_s {
    ngx_shm_zone_t                  *shm_zone;
    ngx_slab_pool_t                 *shpool;
    ngx_http_agentgov_sh_t          *sh;
    ngx_http_agentgov_main_conf_t   *amcf;       /* state_file */
    uint32_t                         state_hash;
};


/* the header of a snapshot; suspended names, then task data, follow */
typedef struct {
    ngx_uint_t                       stopped;
    ngx_uint_t                       nsuspended;
    ngx_uint_t                       ntasks;
    ngx_uint_t                       npins;
} ngx_http_agentgov_snapshot_t;

/* a pin in a snapshot; its key ("tool NUL name") follows, 8-aligned */
typedef struct {
    size_t                           klen;
    ngx_uint_t                       changed;
    u_char                           pinned[AG_MCP_DIGEST_HEX];
    u_char                           seen[AG_MCP_DIGEST_HEX];
} ngx_http_agentgov_pin_snap_t;

#define ngx_http_agentgov_pin_size(klen)                                      \
    (sizeof(ngx_http_agentgov_pin_snap_t) + ngx_align(klen, 8))


static ngx_int_t ngx_http_agentgov_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_agentgov_task_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_agentgov_agent_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_agentgov_set_insert(ngx_http_agentgov_sh_t *sh);
static void ngx_http_agentgov_holds_sweep(ngx_http_agentgov_store_t *s,
    int64_t now);
static void ngx_http_agentgov_hold_closed(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_hold_node_t *n, int64_t now);

static ngx_http_agentgov_task_node_t *ngx_http_agentgov_task_lookup(
    ngx_http_agentgov_sh_t *sh, uint32_t hash, u_char *id, size_t len);
static ngx_rbtree_node_t *ngx_http_agentgov_task_after(
    ngx_http_agentgov_sh_t *sh, uint32_t hash, u_char *id, size_t len);
static ngx_http_agentgov_agent_t *ngx_http_agentgov_agent_lookup(
    ngx_http_agentgov_sh_t *sh, uint32_t hash, u_char *name, size_t len);
static ngx_http_agentgov_agent_t *ngx_http_agentgov_agent_create(
    ngx_http_agentgov_store_t *s, uint32_t hash, u_char *name, size_t len,
    int64_t now, ngx_uint_t reserve);
static void ngx_http_agentgov_reserve_fill(ngx_http_agentgov_store_t *s);
static void ngx_http_agentgov_agent_release(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_agent_t *an);

static ngx_http_agentgov_task_node_t *ngx_http_agentgov_task_create(
    ngx_http_agentgov_store_t *s, const ag_task_t *t, size_t strs,
    int64_t now);
static void ngx_http_agentgov_task_link(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec, ngx_http_agentgov_task_node_t *parent,
    ngx_http_agentgov_agent_t *an);
static void ngx_http_agentgov_task_free(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec);
static void ngx_http_agentgov_uncount(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec);
static ngx_uint_t ngx_http_agentgov_end_tree(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec, ag_task_state_t state, int64_t now,
    ngx_uint_t depth);
static void ngx_http_agentgov_cap_tree(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec, int64_t expires, ngx_uint_t depth);
static void ngx_http_agentgov_expire(ngx_http_agentgov_store_t *s,
    int64_t now, ngx_uint_t n);
static void *ngx_http_agentgov_alloc(ngx_http_agentgov_store_t *s,
    size_t size, int64_t now);
static ngx_uint_t ngx_http_agentgov_full(ngx_http_agentgov_store_t *s);
static void ngx_http_agentgov_log_full(ngx_http_agentgov_store_t *s);

static size_t ngx_http_agentgov_task_strs(const ag_task_t *t);
static void ngx_http_agentgov_task_decode(ngx_http_agentgov_task_data_t *d,
    u_char *str, ag_task_t *t, int64_t now);
static size_t ngx_http_agentgov_data_strs(ngx_http_agentgov_task_data_t *d);

static void ngx_http_agentgov_zone_flush_old(ngx_shm_zone_t *shm_zone);
static void ngx_http_agentgov_save_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_agentgov_state_pending(
    ngx_http_agentgov_store_t *s);
static ngx_int_t ngx_http_agentgov_state_save(ngx_http_agentgov_store_t *s,
    ngx_uint_t wait);
static ngx_fd_t ngx_http_agentgov_state_lock(ngx_str_t *file,
    ngx_uint_t wait);
static void ngx_http_agentgov_state_chown(ngx_fd_t fd, u_char *name);
static u_char *ngx_http_agentgov_snapshot(ngx_http_agentgov_store_t *s,
    uint64_t *gen, size_t *size);
static u_char *ngx_http_agentgov_state_encode(u_char *snap, size_t size,
    size_t *len);
static u_char *ngx_http_agentgov_json_str(u_char *dst, u_char *src,
    size_t len);
static size_t ngx_http_agentgov_utf8_len(u_char *p, size_t avail);
static ngx_int_t ngx_http_agentgov_state_write(ngx_str_t *file, u_char *text,
    size_t len, ngx_log_t *log);
static ngx_int_t ngx_http_agentgov_state_load(ngx_http_agentgov_store_t *s,
    ngx_log_t *log);
static ngx_int_t ngx_http_agentgov_state_restore(ngx_http_agentgov_store_t *s,
    json_t *root, int64_t now, ngx_log_t *log, ngx_str_t *file);
static const char *ngx_http_agentgov_state_task(json_t *v, ag_task_t *t);
static const char *ngx_http_agentgov_state_err(const char *what,
    const char *key);


/* offsets in ag_task_t of its strings, and their names in agentgov_state */

static const size_t  ngx_http_agentgov_str_off[NGX_HTTP_AGENTGOV_NSTR] = {
    offsetof(ag_task_t, id),
    offsetof(ag_task_t, agent),
    offsetof(ag_task_t, owner),
    offsetof(ag_task_t, intent),
    offsetof(ag_task_t, parent),
    offsetof(ag_task_t, cnf),
    offsetof(ag_task_t, tools),
    offsetof(ag_task_t, chain),
    offsetof(ag_task_t, purpose)
};

static const char  *ngx_http_agentgov_str_key[NGX_HTTP_AGENTGOV_NSTR] = {
    "id", "agent", "owner", "intent", "parent", "cnf", "tools", "chain",
    "purpose"
};

/* each worker's save timer (agentgov_state) */
static ngx_event_t  ngx_http_agentgov_save_event;

#define ngx_http_agentgov_str(t, i)                                           \
    ((ag_str_t *) ((u_char *) (t) + ngx_http_agentgov_str_off[i]))

#define ngx_http_agentgov_hash(p, len)                                        \
    ngx_crc32_short((u_char *) (p), len)

#define ngx_http_agentgov_exp_rec(n)                                          \
    ((ngx_http_agentgov_task_node_t *)                                        \
         ((u_char *) (n) - offsetof(ngx_http_agentgov_task_node_t, exp.node)))

/* bytes a task takes in a snapshot: its data and strings, 8-aligned */
#define ngx_http_agentgov_data_size(strs)                                     \
    ngx_align(offsetof(ngx_http_agentgov_task_data_t, str) + (strs), 8)

#define ngx_http_agentgov_name_size(len)                                      \
    (sizeof(size_t) + ngx_align(len, sizeof(size_t)))

/* whether a record is a live task at time now */
#define ngx_http_agentgov_live(rec, now)                                      \
    ((rec)->d.state == AG_TASK_LIVE && !(rec)->d.dead                         \
     && (rec)->d.expires > (now))

/* NGX_DEBUG builds leave a removed link NULL: keep links always valid */
#define ngx_http_agentgov_unlink(q)                                           \
    ngx_queue_remove(q);                                                      \
    ngx_queue_init(q)


/* --- directives ----------------------------------------------------------- */

/* agentgov_zone NAME SIZE */

char *
ngx_http_agentgov_zone_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_agentgov_main_conf_t *amcf = conf;

    ssize_t                     size;
    ngx_str_t                  *value;
    ngx_http_agentgov_store_t  *s;

    if (amcf->zone != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_zone needs a name");
        return NGX_CONF_ERROR;
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_zone \"%V\": invalid size \"%V\"",
                           &value[1], &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < NGX_HTTP_AGENTGOV_ZONE_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_zone \"%V\" is too small (at least %uzk)",
                           &value[1],
                           (size_t) NGX_HTTP_AGENTGOV_ZONE_MIN / 1024);
        return NGX_CONF_ERROR;
    }

    s = ngx_pcalloc(cf->pool, sizeof(ngx_http_agentgov_store_t));
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf->zone = ngx_shared_memory_add(cf, &value[1], size,
                                       &ngx_http_agentgov_module);
    if (amcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (amcf->zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_zone \"%V\" is already used",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    /* agentgov_state may come later: init_zone reads it through amcf */
    s->shm_zone = amcf->zone;
    s->amcf = amcf;

    amcf->zone->init = ngx_http_agentgov_zone_init;
    amcf->zone->data = s;

    return NGX_CONF_OK;
}


/* agentgov_state FILE */

char *
ngx_http_agentgov_state_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_agentgov_main_conf_t *amcf = conf;

    ngx_str_t  *value, name;

    if (amcf->state_file.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (name.len == 0) {
        return "needs a file name";
    }

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* room for ".tmp" and ".lock" in the buffers of the writer */
    if (name.len + sizeof(".lock") > NGX_MAX_PATH) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_state \"%V\": name too long", &name);
        return NGX_CONF_ERROR;
    }

    amcf->state_file = name;

    return NGX_CONF_OK;
}


/*
 * For the main conf's init: agentgov_state without agentgov_zone would
 * promise persistence of state that does not exist.
 */

char *
ngx_http_agentgov_zone_check_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_agentgov_main_conf_t *amcf = conf;

    if (amcf->state_file.data != NULL && amcf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"agentgov_state\" requires \"agentgov_zone\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_agentgov_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_agentgov_store_t *os = data;

    size_t                      len;
    ngx_str_t                  *file;
    ngx_slab_pool_t            *shpool;
    ngx_http_agentgov_sh_t     *sh;
    ngx_http_agentgov_store_t  *s;

    s = shm_zone->data;
    file = &s->amcf->state_file;

    if (file->len) {
        s->state_hash = ngx_http_agentgov_hash(file->data, file->len);
    }

    if (os) {
        /* a reload with the same name and size: keep everything */

        if (os->sh->version != NGX_HTTP_AGENTGOV_ZONE_VERSION
            || os->sh->size != sizeof(ngx_http_agentgov_sh_t))
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "agentgov_zone \"%V\" was created by another "
                          "version of the module: restart nginx",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        s->sh = os->sh;
        s->shpool = os->shpool;

        ngx_shmtx_lock(&s->shpool->mutex);
        ngx_http_agentgov_set_insert(s->sh);
        s->sh->conf_path = s->state_hash;
        ngx_shmtx_unlock(&s->shpool->mutex);

        /*
         * A new agentgov_state path is written by the first new worker
         * (ngx_http_agentgov_store_init_process) or with the next change:
         * the saved path no longer matches.
         */

        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    s->shpool = shpool;

    if (shm_zone->shm.exists) {
        s->sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_agentgov_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->version = NGX_HTTP_AGENTGOV_ZONE_VERSION;
    sh->size = sizeof(ngx_http_agentgov_sh_t);
    sh->conf_path = s->state_hash;

    ngx_rbtree_init(&sh->tasks, &sh->tasks_sentinel,
                    ngx_http_agentgov_task_insert_value);
    ngx_rbtree_init(&sh->expiry, &sh->expiry_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&sh->agents, &sh->agents_sentinel,
                    ngx_http_agentgov_agent_insert_value);
    ngx_queue_init(&sh->dead);
    ngx_rbtree_init(&sh->holds, &sh->holds_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->holds_queue);
    ngx_rbtree_init(&sh->sessions, &sh->sessions_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->sessions_queue);
    ngx_rbtree_init(&sh->pins, &sh->pins_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->pins_queue);

    s->sh = sh;
    shpool->data = sh;

    len = sizeof(" in agentgov_zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in agentgov_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is logged by the store, once a second */
    shpool->log_nomem = 0;

    ngx_http_agentgov_reserve_fill(s);

    ngx_http_agentgov_zone_flush_old(shm_zone);

    if (file->len == 0) {
        return NGX_OK;
    }

    return ngx_http_agentgov_state_load(s, shm_zone->shm.log);
}


/*
 * A new zone where the running configuration has one of the same name (a
 * reload that changed its size): the old zone's changes not yet on disk are
 * written now, by the master, which still maps it, before the new zone loads
 * the file. Otherwise the new zone would start without them, and the old
 * workers' timers would then write the old zone over what the new workers
 * saved (a suspension among it). During a reload, ngx_cycle is still the
 * running cycle; at start and in "nginx -t" it has no zones.
 */

static void
ngx_http_agentgov_zone_flush_old(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t                  i, n;
    ngx_list_part_t            *part;
    ngx_shm_zone_t             *oz;
    ngx_http_agentgov_store_t  *os;

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    oz = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return;
            }

            part = part->next;
            oz = part->elts;
            i = 0;
        }

        if (oz[i].tag != shm_zone->tag
            || oz[i].shm.name.len != shm_zone->shm.name.len
            || ngx_strncmp(oz[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len)
               != 0)
        {
            continue;
        }

        os = oz[i].data;

        if (os == NULL || os->sh == NULL
            || os->amcf->state_file.len == 0
            || os->sh->version != NGX_HTTP_AGENTGOV_ZONE_VERSION
            || os->sh->size != sizeof(ngx_http_agentgov_sh_t))
        {
            return;
        }

        /*
         * The master blocks signals here: if a worker died holding the old
         * zone's lock, nothing would release it while we waited.
         */

        for (n = 0; !ngx_shmtx_trylock(&os->shpool->mutex); n++) {
            if (n == 1000) {
                ngx_log_error(NGX_LOG_ALERT, shm_zone->shm.log, 0,
                              "agentgov_zone \"%V\": the old zone stays "
                              "locked, its unsaved changes are not carried "
                              "over", &shm_zone->shm.name);
                return;
            }

            ngx_msleep(1);
        }

        ngx_shmtx_unlock(&os->shpool->mutex);

        (void) ngx_http_agentgov_state_save(os, NGX_HTTP_AGENTGOV_SAVE_WAIT);

        return;
    }
}


/* function pointers in the zone: set again on reload, as a new mapping of
   the module could place them elsewhere */

static void
ngx_http_agentgov_set_insert(ngx_http_agentgov_sh_t *sh)
{
    sh->holds.insert = ngx_str_rbtree_insert_value;
    sh->sessions.insert = ngx_str_rbtree_insert_value;
    sh->pins.insert = ngx_str_rbtree_insert_value;
    sh->tasks.insert = ngx_http_agentgov_task_insert_value;
    sh->expiry.insert = ngx_rbtree_insert_value;
    sh->agents.insert = ngx_http_agentgov_agent_insert_value;
}


/*
 * For the module's init_process: a worker writes agentgov_state if the zone
 * holds changes the file does not (its path changed on reload, it did not
 * exist at start, or changes were left before a reload), so that a restart
 * right now would lose nothing, and arms its save timer.
 */

ngx_int_t
ngx_http_agentgov_store_init_process(ngx_cycle_t *cycle)
{
    u_char                         *p;
    ngx_event_t                    *ev;
    ngx_uint_t                      writable;
    ngx_http_agentgov_store_t      *s;
    ngx_http_agentgov_main_conf_t  *amcf;
    u_char                          dir[NGX_MAX_PATH];

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_agentgov_module);

    if (amcf == NULL || amcf->zone == NULL || amcf->state_file.len == 0) {
        return NGX_OK;
    }

    s = amcf->zone->data;

    /* FILE.tmp is renamed over FILE: the workers need the directory */

    p = ngx_cpymem(dir, amcf->state_file.data, amcf->state_file.len);
    *p = '\0';

    while (p > dir && p[-1] != '/') {
        p--;
    }

    *(p - 1 == dir ? p : p - 1) = '\0';

    writable = (access((char *) dir, W_OK|X_OK) == 0);

    if (!writable) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "agentgov_state \"%V\": the worker processes cannot "
                      "write to the directory \"%s\", so nothing is saved",
                      &amcf->state_file, dir);

        ngx_shmtx_lock(&s->shpool->mutex);
        s->sh->save_failed = 1;
        ngx_shmtx_unlock(&s->shpool->mutex);

        return NGX_OK;
    }

    /* another worker starting at the same time may be writing already */
    (void) ngx_http_agentgov_state_save(s, NGX_HTTP_AGENTGOV_SAVE_NOWAIT);

    /*
     * Cancelable: a worker that is shutting down (after a reload) exits
     * once only such timers are left; what it leaves unsaved is written by
     * its exit (ngx_http_agentgov_store_exit_process) or the new workers.
     */

    ev = &ngx_http_agentgov_save_event;
    ev->handler = ngx_http_agentgov_save_handler;
    ev->data = s;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_HTTP_AGENTGOV_SAVE_TICK);

    return NGX_OK;
}


/*
 * Writes what declarations, renewals, resume and start left unsaved. Every
 * worker has this timer, and it looks at the zone's generations, not at
 * what this worker did: changes of a worker that exited or died, or of one
 * from before a reload, are saved all the same. Without changes it costs a
 * lock and two comparisons.
 */

static void
ngx_http_agentgov_save_handler(ngx_event_t *ev)
{
    ngx_msec_t  delay;

    delay = NGX_HTTP_AGENTGOV_SAVE_TICK;

    if (ngx_http_agentgov_state_save(ev->data, NGX_HTTP_AGENTGOV_SAVE_NOWAIT)
        != NGX_OK)
    {
        /* it has been logged: not again at every tick */
        delay = NGX_HTTP_AGENTGOV_SAVE_RETRY;
    }

    ngx_add_timer(ev, delay);
}


/*
 * For the module's exit_process: a worker that exits (a reload, a stop)
 * writes what is still unsaved, waiting for a writer that holds the file.
 * Not after SIGKILL or a crash: then the other workers' timers do it, or,
 * if every process died, the changes are lost, which fails closed.
 */

void
ngx_http_agentgov_store_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_agentgov_store_t      *s;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_agentgov_module);

    if (amcf == NULL || amcf->zone == NULL || amcf->state_file.len == 0) {
        return;
    }

    s = amcf->zone->data;

    if (s == NULL || s->sh == NULL) {
        return;
    }

    (void) ngx_http_agentgov_state_save(s, NGX_HTTP_AGENTGOV_SAVE_WAIT);
}


/* --- the trees ------------------------------------------------------------ */

static void
ngx_http_agentgov_task_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t              **p;
    ngx_http_agentgov_task_node_t   *n, *t;

    n = (ngx_http_agentgov_task_node_t *) node;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            t = (ngx_http_agentgov_task_node_t *) temp;

            p = (ngx_memn2cmp(n->d.str, t->d.str,
                              n->d.len8[NGX_HTTP_AGENTGOV_S_ID],
                              t->d.len8[NGX_HTTP_AGENTGOV_S_ID])
                 < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static void
ngx_http_agentgov_agent_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_http_agentgov_agent_t   *n, *t;

    n = (ngx_http_agentgov_agent_t *) node;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            t = (ngx_http_agentgov_agent_t *) temp;

            p = (ngx_memn2cmp(n->name, t->name, n->len, t->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_agentgov_task_node_t *
ngx_http_agentgov_task_lookup(ngx_http_agentgov_sh_t *sh, uint32_t hash,
    u_char *id, size_t len)
{
    ngx_int_t                       rc;
    ngx_rbtree_node_t              *node, *sentinel;
    ngx_http_agentgov_task_node_t  *rec;

    node = sh->tasks.root;
    sentinel = sh->tasks.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        rec = (ngx_http_agentgov_task_node_t *) node;

        rc = ngx_memn2cmp(id, rec->d.str, len,
                          rec->d.len8[NGX_HTTP_AGENTGOV_S_ID]);

        if (rc == 0) {
            return rec;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* The first task after (hash, id) in tree order, whether or not it exists:
   a list's cursor may name a task that has since been freed. */

static ngx_rbtree_node_t *
ngx_http_agentgov_task_after(ngx_http_agentgov_sh_t *sh, uint32_t hash,
    u_char *id, size_t len)
{
    ngx_int_t                       rc;
    ngx_rbtree_node_t              *node, *sentinel, *best;
    ngx_http_agentgov_task_node_t  *rec;

    node = sh->tasks.root;
    sentinel = sh->tasks.sentinel;
    best = NULL;

    while (node != sentinel) {

        if (hash != node->key) {
            rc = (hash < node->key) ? -1 : 1;

        } else {
            rec = (ngx_http_agentgov_task_node_t *) node;
            rc = ngx_memn2cmp(id, rec->d.str, len,
                              rec->d.len8[NGX_HTTP_AGENTGOV_S_ID]);
        }

        if (rc == 0) {
            return ngx_rbtree_next(&sh->tasks, node);
        }

        if (rc < 0) {
            best = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    return best;
}


static ngx_http_agentgov_agent_t *
ngx_http_agentgov_agent_lookup(ngx_http_agentgov_sh_t *sh, uint32_t hash,
    u_char *name, size_t len)
{
    ngx_int_t                   rc;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_http_agentgov_agent_t  *an;

    node = sh->agents.root;
    sentinel = sh->agents.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        an = (ngx_http_agentgov_agent_t *) node;

        rc = ngx_memn2cmp(name, an->name, len, an->len);

        if (rc == 0) {
            return an;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_agentgov_agent_t *
ngx_http_agentgov_agent_create(ngx_http_agentgov_store_t *s, uint32_t hash,
    u_char *name, size_t len, int64_t now, ngx_uint_t reserve)
{
    ngx_http_agentgov_sh_t     *sh;
    ngx_http_agentgov_agent_t  *an;

    sh = s->sh;

    an = ngx_http_agentgov_alloc(s,
                         offsetof(ngx_http_agentgov_agent_t, name) + len, now);

    if (an == NULL) {
        if (!reserve || sh->reserve == NULL) {
            return NULL;
        }

        an = sh->reserve;
        sh->reserve = *(void **) an;
        sh->nreserve--;
    }

    ngx_memzero(an, offsetof(ngx_http_agentgov_agent_t, name));

    an->node.key = hash;
    an->len = (u_short) len;
    ngx_memcpy(an->name, name, len);

    ngx_rbtree_insert(&s->sh->agents, &an->node);

    return an;
}


/* Freed records come back here first; called from every expiry pass. */

static void
ngx_http_agentgov_reserve_fill(ngx_http_agentgov_store_t *s)
{
    void                    *p;
    ngx_http_agentgov_sh_t  *sh;

    sh = s->sh;

    while (sh->nreserve < NGX_HTTP_AGENTGOV_RESERVE) {
        p = ngx_slab_alloc_locked(s->shpool, NGX_HTTP_AGENTGOV_RESERVE_SIZE);
        if (p == NULL) {
            return;
        }

        *(void **) p = sh->reserve;
        sh->reserve = p;
        sh->nreserve++;
    }
}


/* An agent's record is kept only while it means something. */

static void
ngx_http_agentgov_agent_release(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_agent_t *an)
{
    if (an->live == 0 && !an->suspended) {
        ngx_rbtree_delete(&s->sh->agents, &an->node);
        ngx_slab_free_locked(s->shpool, an);
    }
}


/* --- task records --------------------------------------------------------- */

/* The bytes of t's strings, or 0 if t cannot be stored. */

static size_t
ngx_http_agentgov_task_strs(const ag_task_t *t)
{
    size_t       n;
    ngx_uint_t   i;
    ag_str_t    *v;

    n = 0;

    for (i = 0; i < NGX_HTTP_AGENTGOV_NSTR; i++) {
        v = ngx_http_agentgov_str(t, i);

        if (v->len && v->p == NULL) {
            return 0;
        }

        if (v->len > (i < NGX_HTTP_AGENTGOV_NSTR8
                      ? 255 : NGX_HTTP_AGENTGOV_STRS_MAX))
        {
            return 0;
        }

        n += v->len;
    }

    if (t->id.len == 0 || t->id.len > NGX_HTTP_AGENTGOV_ID_MAX
        || t->agent.len == 0 || t->agent.len > NGX_HTTP_AGENTGOV_NAME_MAX
        || t->parent.len > NGX_HTTP_AGENTGOV_ID_MAX
        || n > NGX_HTTP_AGENTGOV_STRS_MAX
        || t->depth < 0 || t->depth > NGX_HTTP_AGENTGOV_DEPTH_MAX
        || (t->depth == 0) != (t->parent.len == 0))
    {
        return 0;
    }

    return n;
}


/* A record for t, not yet in any index: nothing is changed on failure. */

static ngx_http_agentgov_task_node_t *
ngx_http_agentgov_task_create(ngx_http_agentgov_store_t *s,
    const ag_task_t *t, size_t strs, int64_t now)
{
    u_char                         *p;
    ngx_uint_t                      i;
    ag_str_t                       *v;
    ngx_http_agentgov_task_node_t  *rec;

    rec = ngx_http_agentgov_alloc(s,
                    offsetof(ngx_http_agentgov_task_node_t, d.str) + strs, now);
    if (rec == NULL) {
        return NULL;
    }

    ngx_memzero(rec, offsetof(ngx_http_agentgov_task_node_t, d.str));

    rec->node.key = ngx_http_agentgov_hash(t->id.p, t->id.len);
    rec->exp.node.key = (ngx_rbtree_key_t) t->expires;

    rec->d.granted = t->granted;
    rec->d.expires = t->expires;
    rec->d.calls = t->calls;
    rec->d.bucket_mtok = t->bucket_mtok;
    rec->d.bucket_ms = t->bucket_ms;
    rec->d.depth = (u_char) t->depth;
    rec->d.state = AG_TASK_LIVE;

    p = rec->d.str;

    for (i = 0; i < NGX_HTTP_AGENTGOV_NSTR; i++) {
        v = ngx_http_agentgov_str(t, i);
        if (i < NGX_HTTP_AGENTGOV_NSTR8) {
            rec->d.len8[i] = (u_char) v->len;

        } else {
            rec->d.len16[i - NGX_HTTP_AGENTGOV_NSTR8] = (u_short) v->len;
        }

        if (v->len) {
            p = ngx_cpymem(p, v->p, v->len);
        }
    }

    ngx_queue_init(&rec->children);
    ngx_queue_init(&rec->sibling);

    return rec;
}


/* Put a new record into every index and count it live for its agent. */

static void
ngx_http_agentgov_task_link(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec, ngx_http_agentgov_task_node_t *parent,
    ngx_http_agentgov_agent_t *an)
{
    size_t                   strs;
    ngx_http_agentgov_sh_t  *sh;

    sh = s->sh;

    ngx_rbtree_insert(&sh->tasks, &rec->node);
    ngx_rbtree_insert(&sh->expiry, &rec->exp.node);

    if (parent) {
        ngx_queue_insert_tail(&parent->children, &rec->sibling);
    }

    strs = ngx_http_agentgov_data_strs(&rec->d);

    rec->d.counted = 1;
    an->live++;

    sh->records++;
    sh->live++;
    sh->live_bytes += ngx_http_agentgov_data_size(strs);
}


/* A live record stops counting: it ended, or its expiry passed. */

static void
ngx_http_agentgov_uncount(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec)
{
    u_char                     *name;
    size_t                      len;
    ngx_http_agentgov_agent_t  *an;

    if (!rec->d.counted) {
        return;
    }

    rec->d.counted = 0;

    s->sh->live--;
    s->sh->live_bytes -= ngx_http_agentgov_data_size(
                                         ngx_http_agentgov_data_strs(&rec->d));

    /* the agent's record is looked up rather than pointed to: 8 bytes less
       in every task */

    name = rec->d.str + rec->d.len8[NGX_HTTP_AGENTGOV_S_ID];
    len = rec->d.len8[NGX_HTTP_AGENTGOV_S_AGENT];

    an = ngx_http_agentgov_agent_lookup(s->sh,
                                        ngx_http_agentgov_hash(name, len),
                                        name, len);
    if (an == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "agentgov_zone \"%V\": no record of agent \"%*s\"",
                      &s->shm_zone->shm.name, len, name);
        return;
    }

    an->live--;
    ngx_http_agentgov_agent_release(s, an);
}


static void
ngx_http_agentgov_task_free(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec)
{
    ngx_queue_t             *q;
    ngx_http_agentgov_sh_t  *sh;

    sh = s->sh;

    ngx_http_agentgov_uncount(s, rec);

    if (rec->d.dead) {
        ngx_http_agentgov_unlink(&rec->exp.queue);

    } else {
        ngx_rbtree_delete(&sh->expiry, &rec->exp.node);

        if (rec->d.state != AG_TASK_LIVE) {
            sh->ended--;
        }
    }

    ngx_rbtree_delete(&sh->tasks, &rec->node);

    /* children outlive a parent only when they are not live */
    while (!ngx_queue_empty(&rec->children)) {
        q = ngx_queue_head(&rec->children);
        ngx_http_agentgov_unlink(q);
    }

    ngx_http_agentgov_unlink(&rec->sibling);

    sh->records--;

    ngx_slab_free_locked(s->shpool, rec);
}


/*
 * End or revoke rec, if it is live, and every live descendant (a task that
 * is not live has none; its subtree is walked all the same).
 */

static ngx_uint_t
ngx_http_agentgov_end_tree(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec, ag_task_state_t state, int64_t now,
    ngx_uint_t depth)
{
    ngx_uint_t                      n;
    ngx_queue_t                    *q;
    ngx_http_agentgov_task_node_t  *child;

    n = 0;

    if (ngx_http_agentgov_live(rec, now)) {
        ngx_http_agentgov_uncount(s, rec);

        rec->d.state = (u_char) state;
        rec->d.ended = now;
        s->sh->ended++;
        n++;
    }

    if (depth >= NGX_HTTP_AGENTGOV_DEPTH_MAX) {
        return n;
    }

    for (q = ngx_queue_head(&rec->children);
         q != ngx_queue_sentinel(&rec->children);
         q = ngx_queue_next(q))
    {
        child = ngx_queue_data(q, ngx_http_agentgov_task_node_t, sibling);
        n += ngx_http_agentgov_end_tree(s, child, state, now, depth + 1);
    }

    return n;
}


/*
 * A child expires no later than its parent: when a renewal brings a task's
 * expiry forward, its descendants' come forward with it. Without this, a
 * child could outlive its parent, and once the parent's record is freed, no
 * end of an ancestor would reach it.
 */

static void
ngx_http_agentgov_cap_tree(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_task_node_t *rec, int64_t expires, ngx_uint_t depth)
{
    ngx_queue_t                    *q;
    ngx_http_agentgov_task_node_t  *child;

    if (depth >= NGX_HTTP_AGENTGOV_DEPTH_MAX) {
        return;
    }

    for (q = ngx_queue_head(&rec->children);
         q != ngx_queue_sentinel(&rec->children);
         q = ngx_queue_next(q))
    {
        child = ngx_queue_data(q, ngx_http_agentgov_task_node_t, sibling);

        if (child->d.dead || child->d.expires <= expires) {
            continue;
        }

        ngx_rbtree_delete(&s->sh->expiry, &child->exp.node);
        child->d.expires = expires;
        child->exp.node.key = (ngx_rbtree_key_t) expires;
        ngx_rbtree_insert(&s->sh->expiry, &child->exp.node);

        ngx_http_agentgov_cap_tree(s, child, expires, depth + 1);
    }
}


/*
 * Move up to n records whose expiry has passed to the dead queue (live
 * ones stop counting), and free up to n dead ones whose lingering is over.
 */

static void
ngx_http_agentgov_expire(ngx_http_agentgov_store_t *s, int64_t now,
    ngx_uint_t n)
{
    ngx_uint_t                      m;
    ngx_queue_t                    *q;
    ngx_rbtree_node_t              *node, *sentinel;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_task_node_t  *rec;

    sh = s->sh;
    sentinel = sh->expiry.sentinel;

    for (m = n; m && sh->expiry.root != sentinel; m--) {

        node = ngx_rbtree_min(sh->expiry.root, sentinel);

        if ((int64_t) node->key > now) {
            break;
        }

        rec = ngx_http_agentgov_exp_rec(node);

        ngx_rbtree_delete(&sh->expiry, node);

        if (rec->d.state == AG_TASK_LIVE) {
            ngx_http_agentgov_uncount(s, rec);

        } else {
            sh->ended--;
        }

        rec->d.dead = 1;
        ngx_queue_insert_tail(&sh->dead, &rec->exp.queue);
    }

    for (m = n; m && !ngx_queue_empty(&sh->dead); m--) {

        q = ngx_queue_head(&sh->dead);
        rec = ngx_queue_data(q, ngx_http_agentgov_task_node_t, exp.queue);

        if (rec->d.expires + NGX_HTTP_AGENTGOV_LINGER > now) {
            break;
        }

        ngx_http_agentgov_task_free(s, rec);
    }

    if (sh->nreserve < NGX_HTTP_AGENTGOV_RESERVE) {
        ngx_http_agentgov_reserve_fill(s);
    }
}


/*
 * Allocate from the zone; when it is full, forget every record that is not
 * live (expired ones, then ended and revoked ones, oldest first) and retry
 * once. Live records are never dropped: that would silently end tasks.
 */

static void *
ngx_http_agentgov_alloc(ngx_http_agentgov_store_t *s, size_t size,
    int64_t now)
{
    void                           *p;
    ngx_queue_t                    *q;
    ngx_rbtree_node_t              *node, *next, *sentinel;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_task_node_t  *rec;

    p = ngx_slab_alloc_locked(s->shpool, size);
    if (p) {
        return p;
    }

    sh = s->sh;

    ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_ALL);

    while (!ngx_queue_empty(&sh->dead)) {
        q = ngx_queue_head(&sh->dead);
        rec = ngx_queue_data(q, ngx_http_agentgov_task_node_t, exp.queue);
        ngx_http_agentgov_task_free(s, rec);
    }

    sentinel = sh->expiry.sentinel;
    node = (sh->ended && sh->expiry.root != sentinel)
           ? ngx_rbtree_min(sh->expiry.root, sentinel) : NULL;

    while (node && sh->ended) {
        next = ngx_rbtree_next(&sh->expiry, node);
        rec = ngx_http_agentgov_exp_rec(node);

        if (rec->d.state != AG_TASK_LIVE) {
            ngx_http_agentgov_task_free(s, rec);
        }

        node = next;
    }

    return ngx_slab_alloc_locked(s->shpool, size);
}


/* Under the lock: whether to log that the zone is full (once a second). */

static ngx_uint_t
ngx_http_agentgov_full(ngx_http_agentgov_store_t *s)
{
    time_t  now;

    now = ngx_time();

    if (s->sh->full_logged == now) {
        return 0;
    }

    s->sh->full_logged = now;

    return 1;
}


static void
ngx_http_agentgov_log_full(ngx_http_agentgov_store_t *s)
{
    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "agentgov_zone \"%V\" is full", &s->shm_zone->shm.name);
}


/* t from a copy of a record's data; its strings at str. */

static void
ngx_http_agentgov_task_decode(ngx_http_agentgov_task_data_t *d, u_char *str,
    ag_task_t *t, int64_t now)
{
    ngx_uint_t   i;
    ag_str_t    *v;

    ngx_memzero(t, sizeof(ag_task_t));

    for (i = 0; i < NGX_HTTP_AGENTGOV_NSTR; i++) {
        v = ngx_http_agentgov_str(t, i);
        v->p = (const char *) str;
        v->len = ngx_http_agentgov_len(d, i);
        str += v->len;
    }

    t->depth = d->depth;
    t->state = (ag_task_state_t) d->state;
    t->granted = d->granted;
    t->expires = d->expires;
    t->ended = d->ended;
    t->calls = d->calls;
    t->bucket_mtok = d->bucket_mtok;
    t->bucket_ms = d->bucket_ms;

    if (t->state == AG_TASK_LIVE && (d->dead || d->expires <= now)) {
        t->state = AG_TASK_EXPIRED;
    }
}


static size_t
ngx_http_agentgov_data_strs(ngx_http_agentgov_task_data_t *d)
{
    size_t      n;
    ngx_uint_t  i;

    n = 0;
    for (i = 0; i < NGX_HTTP_AGENTGOV_NSTR; i++) {
        n += ngx_http_agentgov_len(d, i);
    }

    return n;
}


/* --- the store interface -------------------------------------------------- */

ngx_http_agentgov_store_t *
ngx_http_agentgov_store(ngx_http_request_t *r)
{
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (amcf == NULL || amcf->zone == NULL) {
        return NULL;
    }

    return amcf->zone->data;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_task_add(ngx_http_agentgov_store_t *s,
    const ag_task_t *t, ngx_uint_t max_tasks, int64_t now)
{
    size_t                          strs;
    uint32_t                        hash, ahash, phash;
    ngx_uint_t                      full;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_agent_t      *an;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_task_node_t  *rec, *parent;

    if (s == NULL) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    strs = ngx_http_agentgov_task_strs(t);

    if (strs == 0 || t->expires <= now) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "agentgov: task \"%*s\" cannot be stored",
                      t->id.p ? ngx_min(t->id.len, 64) : 0, t->id.p);
        return NGX_AGENTGOV_STORE_ERROR;
    }

    hash = ngx_http_agentgov_hash(t->id.p, t->id.len);
    ahash = ngx_http_agentgov_hash(t->agent.p, t->agent.len);
    phash = ngx_http_agentgov_hash(t->parent.p, t->parent.len);

    sh = s->sh;
    full = 0;
    parent = NULL;

    ngx_shmtx_lock(&s->shpool->mutex);

    ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_BATCH);

    an = ngx_http_agentgov_agent_lookup(sh, ahash, (u_char *) t->agent.p,
                                        t->agent.len);

    if (sh->stopped || (an && an->suspended)) {
        rc = NGX_AGENTGOV_STORE_SUSPENDED;
        goto done;
    }

    if (t->parent.len) {
        parent = ngx_http_agentgov_task_lookup(sh, phash,
                                               (u_char *) t->parent.p,
                                               t->parent.len);

        if (parent == NULL || !ngx_http_agentgov_live(parent, now)) {
            rc = NGX_AGENTGOV_STORE_NOT_LIVE;
            goto done;
        }
    }

    if (ngx_http_agentgov_task_lookup(sh, hash, (u_char *) t->id.p,
                                      t->id.len))
    {
        rc = NGX_AGENTGOV_STORE_ERROR;
        goto done;
    }

    if (max_tasks && an && an->live >= max_tasks) {

        /* some of them may have expired without anyone noticing yet */

        ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_ALL);

        an = ngx_http_agentgov_agent_lookup(sh, ahash, (u_char *) t->agent.p,
                                            t->agent.len);

        if (an && an->live >= max_tasks) {
            rc = NGX_AGENTGOV_STORE_LIMIT;
            goto done;
        }
    }

    rec = ngx_http_agentgov_task_create(s, t, strs, now);
    if (rec == NULL) {
        full = ngx_http_agentgov_full(s);
        rc = NGX_AGENTGOV_STORE_FULL;
        goto done;
    }

    /* the parent may have been renewed shorter since the caller read it */

    if (parent && rec->d.expires > parent->d.expires) {
        rec->d.expires = parent->d.expires;
        rec->exp.node.key = (ngx_rbtree_key_t) parent->d.expires;
    }

    /*
     * Making room may have freed the agent's record (its last live task had
     * expired); never the parent, which is live.
     */

    an = ngx_http_agentgov_agent_lookup(sh, ahash, (u_char *) t->agent.p,
                                        t->agent.len);

    if (an == NULL) {
        an = ngx_http_agentgov_agent_create(s, ahash, (u_char *) t->agent.p,
                                            t->agent.len, now, 0);
        if (an == NULL) {
            ngx_slab_free_locked(s->shpool, rec);
            full = ngx_http_agentgov_full(s);
            rc = NGX_AGENTGOV_STORE_FULL;
            goto done;
        }
    }

    ngx_http_agentgov_task_link(s, rec, parent, an);

    /* it only adds authority: the save timer writes it */
    sh->gen++;
    rc = NGX_AGENTGOV_STORE_OK;

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    if (full) {
        ngx_http_agentgov_log_full(s);
    }

    return rc;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_task_get(ngx_http_agentgov_store_t *s, ag_str_t id,
    ag_task_t *t, u_char *buf, size_t len, int64_t now)
{
    return ngx_http_agentgov_store_task_use(s, (ag_str_t) { NULL, 0 }, id, t,
                                            buf, len, now);
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_task_use(ngx_http_agentgov_store_t *s, ag_str_t agent,
    ag_str_t id, ag_task_t *t, u_char *buf, size_t len, int64_t now)
{
    size_t                          strs;
    uint32_t                        hash, ahash;
    ngx_http_agentgov_agent_t      *an;
    ngx_http_agentgov_task_data_t   d;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_task_node_t  *rec;

    if (s == NULL) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    hash = ngx_http_agentgov_hash(id.p, id.len);
    ahash = agent.len ? ngx_http_agentgov_hash(agent.p, agent.len) : 0;

    ngx_shmtx_lock(&s->shpool->mutex);

    if (agent.len) {
        /* the kill switch first */
        an = ngx_http_agentgov_agent_lookup(s->sh, ahash, (u_char *) agent.p,
                                            agent.len);

        if (s->sh->stopped || (an && an->suspended)) {
            rc = NGX_AGENTGOV_STORE_SUSPENDED;
            goto done;
        }
    }

    ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_BATCH);

    rec = ngx_http_agentgov_task_lookup(s->sh, hash, (u_char *) id.p, id.len);

    if (rec == NULL) {
        rc = NGX_AGENTGOV_STORE_NOT_FOUND;
        goto done;
    }

    strs = ngx_http_agentgov_data_strs(&rec->d);

    if (strs > len) {
        rc = NGX_AGENTGOV_STORE_ERROR;
        goto done;
    }

    d = rec->d;
    ngx_memcpy(buf, rec->d.str, strs);

    rc = NGX_AGENTGOV_STORE_OK;

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    if (rc == NGX_AGENTGOV_STORE_OK) {
        ngx_http_agentgov_task_decode(&d, buf, t, now);

    } else if (rc == NGX_AGENTGOV_STORE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "agentgov: task_get buffer of %uz bytes is too small",
                      len);
    }

    return rc;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_task_renew(ngx_http_agentgov_store_t *s, ag_str_t id,
    int64_t expires, int64_t now)
{
    uint32_t                        hash;
    ngx_uint_t                      shorter;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_task_node_t  *rec;

    if (s == NULL || expires <= 0) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    hash = ngx_http_agentgov_hash(id.p, id.len);
    sh = s->sh;
    shorter = 0;

    ngx_shmtx_lock(&s->shpool->mutex);

    ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_BATCH);

    rec = ngx_http_agentgov_task_lookup(sh, hash, (u_char *) id.p, id.len);

    if (rec == NULL) {
        rc = NGX_AGENTGOV_STORE_NOT_FOUND;

    } else if (!ngx_http_agentgov_live(rec, now)) {
        rc = NGX_AGENTGOV_STORE_NOT_LIVE;

    } else {
        shorter = (expires < rec->d.expires);

        ngx_rbtree_delete(&sh->expiry, &rec->exp.node);
        rec->d.expires = expires;
        rec->exp.node.key = (ngx_rbtree_key_t) expires;
        ngx_rbtree_insert(&sh->expiry, &rec->exp.node);

        ngx_http_agentgov_cap_tree(s, rec, expires, 0);

        sh->gen++;
        rc = NGX_AGENTGOV_STORE_OK;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    /*
     * Extended, the save timer writes it; shortened (children capped with
     * it), a restart must not give the old expiry back.
     */

    if (shorter) {
        (void) ngx_http_agentgov_state_save(s, NGX_HTTP_AGENTGOV_SAVE_WAIT);
    }

    return rc;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_task_end(ngx_http_agentgov_store_t *s, ag_str_t id,
    ag_task_state_t state, int64_t now, ngx_uint_t *count)
{
    uint32_t                        hash;
    ngx_uint_t                      n;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_task_node_t  *rec;

    if (count) {
        *count = 0;
    }

    if (s == NULL || (state != AG_TASK_ENDED && state != AG_TASK_REVOKED)) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    hash = ngx_http_agentgov_hash(id.p, id.len);
    n = 0;

    ngx_shmtx_lock(&s->shpool->mutex);

    ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_BATCH);

    rec = ngx_http_agentgov_task_lookup(s->sh, hash, (u_char *) id.p, id.len);

    if (rec == NULL) {
        rc = NGX_AGENTGOV_STORE_NOT_FOUND;

    } else if (!ngx_http_agentgov_live(rec, now)) {
        rc = NGX_AGENTGOV_STORE_NOT_LIVE;

    } else {
        n = ngx_http_agentgov_end_tree(s, rec, state, now, 0);
        s->sh->gen++;
        ngx_http_agentgov_holds_sweep(s, now);
        rc = NGX_AGENTGOV_STORE_OK;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    /* on disk before the caller answers: a restart must not revive it */

    if (rc == NGX_AGENTGOV_STORE_OK) {
        (void) ngx_http_agentgov_state_save(s, NGX_HTTP_AGENTGOV_SAVE_WAIT);
    }

    if (count) {
        *count = n;
    }

    return rc;
}


/* The hot path of every forwarded call: one lookup, no housekeeping. */

ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_task_spend(ngx_http_agentgov_store_t *s, ag_str_t id,
    const ag_intent_t *intent, int64_t now_ms, int64_t *retry_after)
{
    uint32_t                        hash;
    ag_task_t                       t;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_task_node_t  *rec;

    if (s == NULL) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    hash = ngx_http_agentgov_hash(id.p, id.len);

    ngx_shmtx_lock(&s->shpool->mutex);

    rec = ngx_http_agentgov_task_lookup(s->sh, hash, (u_char *) id.p, id.len);

    if (rec == NULL) {
        rc = NGX_AGENTGOV_STORE_NOT_FOUND;

    } else if (!ngx_http_agentgov_live(rec, now_ms / 1000)) {
        rc = NGX_AGENTGOV_STORE_NOT_LIVE;

    } else {
        ngx_http_agentgov_task_decode(&rec->d, rec->d.str, &t, now_ms / 1000);

        if (ag_task_budget_spend(intent, &t, now_ms, retry_after) == 0) {
            rc = NGX_AGENTGOV_STORE_OK;

        } else {
            rc = NGX_AGENTGOV_STORE_EXHAUSTED;
        }

        rec->d.calls = t.calls;
        rec->d.bucket_mtok = t.bucket_mtok;
        rec->d.bucket_ms = t.bucket_ms;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


/*
 * Records are copied out under the lock and handed to the handler after it,
 * so that the handler may build JSON without holding every worker up.
 */

ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_task_list(ngx_http_agentgov_store_t *s,
    ag_str_t agent, int state, ag_str_t cursor, ngx_uint_t limit,
    int64_t now, ngx_http_agentgov_task_pt handler, void *data, u_char *next)
{
    u_char                         *buf, *nbuf, *p, *last;
    size_t                          size, used, need, strs;
    uint32_t                        hash;
    ngx_uint_t                      n, more;
    ag_task_t                       t;
    ngx_rbtree_node_t              *node, *sentinel;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_task_data_t  *d;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_task_node_t  *rec;

    next[0] = '\0';

    if (s == NULL) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    if (limit == 0) {
        return NGX_AGENTGOV_STORE_OK;
    }

    hash = ngx_http_agentgov_hash(cursor.p, cursor.len);
    sh = s->sh;

    size = 16384;
    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    used = 0;
    n = 0;
    more = 0;
    last = NULL;
    rc = NGX_AGENTGOV_STORE_OK;

    ngx_shmtx_lock(&s->shpool->mutex);

    ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_BATCH);

    sentinel = sh->tasks.sentinel;

    if (sh->tasks.root == sentinel) {
        node = NULL;

    } else if (cursor.len) {
        node = ngx_http_agentgov_task_after(sh, hash, (u_char *) cursor.p,
                                            cursor.len);
    } else {
        node = ngx_rbtree_min(sh->tasks.root, sentinel);
    }

    for ( /* void */ ; node; node = ngx_rbtree_next(&sh->tasks, node)) {

        rec = (ngx_http_agentgov_task_node_t *) node;

        if (agent.len
            && ngx_memn2cmp((u_char *) agent.p,
                            rec->d.str + rec->d.len8[NGX_HTTP_AGENTGOV_S_ID],
                            agent.len, rec->d.len8[NGX_HTTP_AGENTGOV_S_AGENT])
               != 0)
        {
            continue;
        }

        if (state >= 0) {
            if (ngx_http_agentgov_live(rec, now)) {
                if (state != AG_TASK_LIVE) {
                    continue;
                }

            } else if (rec->d.state == AG_TASK_LIVE) {
                if (state != AG_TASK_EXPIRED) {
                    continue;
                }

            } else if (state != rec->d.state) {
                continue;
            }
        }

        if (n == limit) {
            more = 1;
            break;
        }

        strs = ngx_http_agentgov_data_strs(&rec->d);
        need = ngx_http_agentgov_data_size(strs);

        if (used + need > size) {
            size = ngx_max(size * 2, used + need);

            nbuf = ngx_alloc(size, ngx_cycle->log);
            if (nbuf == NULL) {
                rc = NGX_AGENTGOV_STORE_ERROR;
                break;
            }

            ngx_memcpy(nbuf, buf, used);
            ngx_free(buf);
            buf = nbuf;
        }

        last = buf + used;
        ngx_memcpy(last, &rec->d,
                   offsetof(ngx_http_agentgov_task_data_t, str) + strs);

        used += need;
        n++;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    if (rc != NGX_AGENTGOV_STORE_OK) {
        ngx_free(buf);
        return rc;
    }

    for (p = buf; p < buf + used; p += need) {
        d = (ngx_http_agentgov_task_data_t *) p;
        need = ngx_http_agentgov_data_size(ngx_http_agentgov_data_strs(d));

        ngx_http_agentgov_task_decode(d, d->str, &t, now);
        handler(data, &t);
    }

    if (more && last) {
        d = (ngx_http_agentgov_task_data_t *) last;
        n = ngx_min(d->len8[NGX_HTTP_AGENTGOV_S_ID], AG_TASK_ID_LEN);
        *ngx_cpymem(next, d->str, n) = '\0';
    }

    ngx_free(buf);

    return NGX_AGENTGOV_STORE_OK;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_agent_suspend(ngx_http_agentgov_store_t *s,
    ag_str_t agent, ngx_uint_t on, int64_t now, ngx_uint_t *count)
{
    uint32_t                        hash;
    ngx_uint_t                      n, changed, full;
    ngx_rbtree_node_t              *node;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_agent_t      *an;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_task_node_t  *rec;

    if (count) {
        *count = 0;
    }

    if (s == NULL) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    if (agent.len == 0 || agent.len > NGX_HTTP_AGENTGOV_NAME_MAX) {
        return NGX_AGENTGOV_STORE_NOT_FOUND;
    }

    hash = ngx_http_agentgov_hash(agent.p, agent.len);
    sh = s->sh;
    n = 0;
    changed = 0;
    full = 0;
    rc = NGX_AGENTGOV_STORE_OK;

    ngx_shmtx_lock(&s->shpool->mutex);

    ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_BATCH);

    an = ngx_http_agentgov_agent_lookup(sh, hash, (u_char *) agent.p,
                                        agent.len);

    if (!on) {
        if (an && an->suspended) {
            an->suspended = 0;
            sh->suspended--;
            sh->susp_bytes -= ngx_http_agentgov_name_size(an->len);
            ngx_http_agentgov_agent_release(s, an);
            changed = 1;
        }

        goto done;
    }

    if (an == NULL) {
        /* without a record it has no live task to revoke */

        an = ngx_http_agentgov_agent_create(s, hash, (u_char *) agent.p,
                                            agent.len, now, 1);
        if (an == NULL) {
            full = ngx_http_agentgov_full(s);
            rc = NGX_AGENTGOV_STORE_FULL;
            goto done;
        }
    }

    if (!an->suspended) {
        an->suspended = 1;
        sh->suspended++;
        sh->susp_bytes += ngx_http_agentgov_name_size(an->len);
        changed = 1;
    }

    /* suspended, its record stays while its tasks are revoked */

    if (an->live) {
        for (node = ngx_rbtree_min(sh->tasks.root, sh->tasks.sentinel);
             node;
             node = ngx_rbtree_next(&sh->tasks, node))
        {
            rec = (ngx_http_agentgov_task_node_t *) node;

            if (rec->d.counted
                && ngx_http_agentgov_live(rec, now)
                && ngx_memn2cmp(rec->d.str
                                + rec->d.len8[NGX_HTTP_AGENTGOV_S_ID],
                                an->name,
                                rec->d.len8[NGX_HTTP_AGENTGOV_S_AGENT],
                                an->len)
                   == 0)
            {
                n += ngx_http_agentgov_end_tree(s, rec, AG_TASK_REVOKED, now,
                                                0);
            }
        }
    }

    if (n) {
        changed = 1;
    }

done:

    if (changed) {
        sh->gen++;
        ngx_http_agentgov_holds_sweep(s, now);
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    if (full) {
        ngx_http_agentgov_log_full(s);
    }

    /*
     * A suspension is on disk before the caller answers (even a repeated
     * one, whose first write may have failed): a restart must never lift
     * it. A resume is left to the save timer: lost, the agent stays
     * suspended.
     */

    if (on && rc == NGX_AGENTGOV_STORE_OK) {
        (void) ngx_http_agentgov_state_save(s, NGX_HTTP_AGENTGOV_SAVE_WAIT);
    }

    if (count) {
        *count = n;
    }

    return rc;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_stop(ngx_http_agentgov_store_t *s, ngx_uint_t on,
    int64_t now, ngx_uint_t *count)
{
    ngx_uint_t                      n, changed;
    ngx_rbtree_node_t              *node;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_task_node_t  *rec;

    if (count) {
        *count = 0;
    }

    if (s == NULL) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    sh = s->sh;
    n = 0;
    changed = 0;

    ngx_shmtx_lock(&s->shpool->mutex);

    ngx_http_agentgov_expire(s, now, NGX_HTTP_AGENTGOV_EXPIRE_BATCH);

    if (sh->stopped != (on ? 1 : 0)) {
        sh->stopped = on ? 1 : 0;
        changed = 1;
    }

    if (on && sh->live) {
        for (node = ngx_rbtree_min(sh->tasks.root, sh->tasks.sentinel);
             node;
             node = ngx_rbtree_next(&sh->tasks, node))
        {
            rec = (ngx_http_agentgov_task_node_t *) node;

            if (ngx_http_agentgov_live(rec, now)) {
                n += ngx_http_agentgov_end_tree(s, rec, AG_TASK_REVOKED, now,
                                                0);
            }
        }

        if (n) {
            changed = 1;
        }
    }

    if (changed) {
        sh->gen++;
        ngx_http_agentgov_holds_sweep(s, now);
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    /* as for a suspension: stop waits for the disk, start does not */

    if (on) {
        (void) ngx_http_agentgov_state_save(s, NGX_HTTP_AGENTGOV_SAVE_WAIT);
    }

    if (count) {
        *count = n;
    }

    return NGX_AGENTGOV_STORE_OK;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_agent_check(ngx_http_agentgov_store_t *s,
    ag_str_t agent)
{
    uint32_t                       hash;
    ngx_http_agentgov_agent_t     *an;
    ngx_http_agentgov_store_rc_e   rc;

    if (s == NULL) {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    hash = ngx_http_agentgov_hash(agent.p, agent.len);
    rc = NGX_AGENTGOV_STORE_OK;

    ngx_shmtx_lock(&s->shpool->mutex);

    if (s->sh->stopped) {
        rc = NGX_AGENTGOV_STORE_SUSPENDED;

    } else {
        an = ngx_http_agentgov_agent_lookup(s->sh, hash, (u_char *) agent.p,
                                            agent.len);
        if (an && an->suspended) {
            rc = NGX_AGENTGOV_STORE_SUSPENDED;
        }
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


void
ngx_http_agentgov_store_stats(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_store_stats_t *st)
{
    ngx_uint_t        pages;
    ngx_slab_pool_t  *shpool;

    ngx_memzero(st, sizeof(ngx_http_agentgov_store_stats_t));

    if (s == NULL) {
        return;
    }

    shpool = s->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    ngx_http_agentgov_expire(s, ngx_time(), NGX_HTTP_AGENTGOV_EXPIRE_BATCH);

    st->live_tasks = s->sh->live;
    st->pending_holds = s->sh->pending;
    st->suspended_agents = s->sh->suspended;
    st->stopped = s->sh->stopped;

    pages = shpool->last - shpool->pages;

    if (pages) {
        st->used = (double) (pages - shpool->pfree) / pages;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* --- the audit chain head and the metrics -------------------------------- */

const char *ngx_http_agentgov_metric_codes[] = {
    "no_identity", "invalid_identity", "no_task", "task_expired",
    "task_revoked", "agent_suspended", "out_of_scope", "denied",
    "approval_denied", "approval_expired", "secret_in_request",
    "budget_exceeded", "limit_exceeded", "approval_pending",
    "body_too_large", "bad_request", "tool_changed", "gateway_error",
    NULL
};

const int64_t ngx_http_agentgov_metric_bounds[] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 100000, -1
};


static void
ngx_http_agentgov_count(ngx_http_agentgov_metrics_t *m,
    const ngx_http_agentgov_count_t *c)
{
    ngx_uint_t                        i, slot;
    ngx_http_agentgov_metric_tool_t  *t;

    if (c->decision >= 0 && c->decision < NGX_HTTP_AGENTGOV_D_N) {

        slot = 0;

        if (c->tool.len) {
            /* linear: a policy names tens of tools, and this runs under
               the lock the audit record takes anyway */
            slot = NGX_HTTP_AGENTGOV_METRIC_TOOLS + 1;

            for (i = 1; i <= NGX_HTTP_AGENTGOV_METRIC_TOOLS; i++) {
                t = &m->tools[i];

                if (t->len == 0) {
                    if (c->tool.len > NGX_HTTP_AGENTGOV_METRIC_NAME) {
                        break;
                    }

                    t->len = (u_char) c->tool.len;
                    ngx_memcpy(t->name, c->tool.p, c->tool.len);
                    slot = i;
                    break;
                }

                if (t->len == c->tool.len
                    && ngx_memcmp(t->name, c->tool.p, c->tool.len) == 0)
                {
                    slot = i;
                    break;
                }
            }
        }

        m->tools[slot].n[c->decision]++;
    }

    if (c->code >= 0 && c->code < NGX_HTTP_AGENTGOV_METRIC_CODES) {
        m->codes[c->code]++;
    }

    if (c->latency_us >= 0) {
        for (i = 0; ngx_http_agentgov_metric_bounds[i] >= 0; i++) {
            if (c->latency_us <= ngx_http_agentgov_metric_bounds[i]) {
                break;
            }
        }

        m->buckets[i]++;
        m->latency_sum_us += (uint64_t) c->latency_us;
        m->latency_count++;
    }
}


ngx_int_t
ngx_http_agentgov_store_audit(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_audit_pt handler, void *data,
    const ngx_http_agentgov_count_t *c, ngx_uint_t nc, ngx_uint_t master)
{
    ngx_int_t   rc;
    ngx_uint_t  n;

    if (master) {
        /* the master blocks signals while it loads a configuration: a lock
           left by a dead worker would never be released (see flush_old) */
        for (n = 0; !ngx_shmtx_trylock(&s->shpool->mutex); n++) {
            if (n == 1000) {
                return NGX_BUSY;
            }

            ngx_msleep(1);
        }

    } else {
        ngx_shmtx_lock(&s->shpool->mutex);
    }

    rc = handler ? handler(data, &s->sh->audit) : NGX_OK;

    for (n = 0; n < nc; n++) {
        ngx_http_agentgov_count(&s->sh->metrics, &c[n]);
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


void
ngx_http_agentgov_store_count(ngx_http_agentgov_store_t *s,
    const ngx_http_agentgov_count_t *c)
{
    ngx_shmtx_lock(&s->shpool->mutex);
    ngx_http_agentgov_count(&s->sh->metrics, c);
    ngx_shmtx_unlock(&s->shpool->mutex);
}


void
ngx_http_agentgov_store_observe(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_metrics_t *m, ngx_http_agentgov_audit_head_t *head)
{
    ngx_shmtx_lock(&s->shpool->mutex);

    if (m) {
        ngx_memcpy(m, &s->sh->metrics, sizeof(ngx_http_agentgov_metrics_t));
    }

    if (head) {
        ngx_memcpy(head, &s->sh->audit,
                   sizeof(ngx_http_agentgov_audit_head_t));
    }

    ngx_shmtx_unlock(&s->shpool->mutex);
}


/* --- holds -------------------------------------------------------------------- */

/* Closed holds past their linger go first, oldest first (under the lock). */

static void
ngx_http_agentgov_holds_expire(ngx_http_agentgov_store_t *s, int64_t now,
    ngx_uint_t all)
{
    ngx_uint_t                      n;
    ngx_queue_t                    *q, *next;
    ngx_http_agentgov_hold_node_t  *h;

    n = 0;

    for (q = ngx_queue_head(&s->sh->holds_queue);
         q != ngx_queue_sentinel(&s->sh->holds_queue) && (all || n < 64);
         q = next, n++)
    {
        next = ngx_queue_next(q);
        h = ngx_queue_data(q, ngx_http_agentgov_hold_node_t, queue);

        if (h->state == AG_HOLD_PENDING
            || (!all && now - h->closed < NGX_HTTP_AGENTGOV_HOLD_LINGER))
        {
            continue;
        }

        ngx_queue_remove(&h->queue);
        ngx_rbtree_delete(&s->sh->holds, &h->sn.node);

        if (h->votes) {
            ngx_slab_free_locked(s->shpool, h->votes);
        }

        if (h->reason) {
            ngx_slab_free_locked(s->shpool, h->reason);
        }

        ngx_slab_free_locked(s->shpool, h);
        s->sh->nholds--;
    }
}


/*
 * Pending holds that can never pass are cancelled (under the lock): their
 * task is no longer live (ended, or revoked by a suspension or a stop), or
 * no worker will ever close them (it died with the request, SIGKILL or a
 * crash, or their deadline passed long ago).
 */

static void
ngx_http_agentgov_holds_sweep(ngx_http_agentgov_store_t *s, int64_t now)
{
    u_char                         *task;
    size_t                          off, len;
    ngx_uint_t                      i, gone;
    ngx_queue_t                    *q;
    ngx_http_agentgov_hold_node_t  *h;
    ngx_http_agentgov_task_node_t  *rec;

    if (s->sh->pending == 0) {
        return;
    }

    for (q = ngx_queue_head(&s->sh->holds_queue);
         q != ngx_queue_sentinel(&s->sh->holds_queue);
         q = ngx_queue_next(q))
    {
        h = ngx_queue_data(q, ngx_http_agentgov_hold_node_t, queue);

        if (h->state != AG_HOLD_PENDING) {
            continue;
        }

        off = 0;
        for (i = 0; i < NGX_HTTP_AGENTGOV_H_TASK; i++) {
            off += h->len[i];
        }

        task = h->str + off;
        len = h->len[NGX_HTTP_AGENTGOV_H_TASK];

        rec = ngx_http_agentgov_task_lookup(s->sh,
                                            ngx_http_agentgov_hash(task, len),
                                            task, len);

        /* an async hold (pid 0) parks nothing: only its deadline counts */
        gone = now > h->expires + 5
               || (h->pid != 0 && h->pid != ngx_pid && kill(h->pid, 0) == -1
                   && ngx_errno == NGX_ESRCH);

        if (rec && ngx_http_agentgov_live(rec, now) && !gone) {
            continue;
        }

        /* no worker will write its record: whoever reads it next does */
        h->unrecorded = gone;
        h->state = AG_HOLD_CANCELLED;
        ngx_http_agentgov_hold_closed(s, h, now);
    }
}


/* Under the lock: a hold left pending. */

static void
ngx_http_agentgov_hold_closed(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_hold_node_t *n, int64_t now)
{
    n->closed = now;
    s->sh->pending--;
    s->sh->decisions++;

    if (n->len[NGX_HTTP_AGENTGOV_H_ID] == AG_TASK_ID_LEN) {
        ngx_memcpy(s->sh->closed[s->sh->decisions
                                 % NGX_HTTP_AGENTGOV_CLOSED_RING],
                   n->str, AG_TASK_ID_LEN);
    }
}


ngx_uint_t
ngx_http_agentgov_store_hold_closed(ngx_http_agentgov_store_t *s,
    ngx_uint_t seen, ngx_http_agentgov_closed_pt handler, void *data)
{
    u_char      ids[64][AG_TASK_ID_LEN];
    ngx_uint_t  now, i, n;

    /* copied under the lock, handed out after it: a batch at a time */

    for ( ;; ) {
        ngx_shmtx_lock(&s->shpool->mutex);

        now = s->sh->decisions;

        if (now - seen > NGX_HTTP_AGENTGOV_CLOSED_RING) {
            ngx_shmtx_unlock(&s->shpool->mutex);
            return NGX_HTTP_AGENTGOV_CLOSED_LOST;
        }

        for (n = 0; seen != now && n < 64; n++) {
            seen++;
            ngx_memcpy(ids[n],
                       s->sh->closed[seen % NGX_HTTP_AGENTGOV_CLOSED_RING],
                       AG_TASK_ID_LEN);
        }

        ngx_shmtx_unlock(&s->shpool->mutex);

        for (i = 0; i < n; i++) {
            handler(data, (ag_str_t) { (const char *) ids[i],
                                       AG_TASK_ID_LEN });
        }

        if (seen == now) {
            return seen;
        }
    }
}


static ngx_http_agentgov_hold_node_t *
ngx_http_agentgov_hold_lookup(ngx_http_agentgov_store_t *s, ag_str_t id)
{
    ngx_str_t        key;
    ngx_str_node_t  *sn;

    key.data = (u_char *) id.p;
    key.len = id.len;

    sn = ngx_str_rbtree_lookup(&s->sh->holds, &key,
                               ngx_http_agentgov_hash(id.p, id.len));

    return (ngx_http_agentgov_hold_node_t *) sn;
}


static void
ngx_http_agentgov_hold_copy(ngx_http_agentgov_hold_node_t *n,
    ngx_http_agentgov_hold_t *h, u_char *buf, size_t len)
{
    u_char      *p, *src;
    ngx_uint_t   i;

    h->pid = n->pid;
    h->requested = n->requested;
    h->expires = n->expires;
    h->closed = n->closed;
    h->grant_ttl = n->grant_ttl;
    h->used = n->used;

    h->votes.state = n->state;
    h->votes.nvotes = n->nvotes;

    if (n->nvotes) {
        ngx_memcpy(h->votes.votes, n->votes,
                   n->nvotes * sizeof(ag_hold_vote_t));
    }

    p = buf;
    src = n->str;

    for (i = 0; i < NGX_HTTP_AGENTGOV_H_N; i++) {
        if (i == NGX_HTTP_AGENTGOV_H_DECISION) {
            /* the last string, kept apart: allocated when it came */
            src = n->reason ? n->reason : (u_char *) "";
        }

        if (buf == NULL) {
            h->str[i].p = (const char *) src;
            h->str[i].len = n->len[i];

        } else if ((size_t) (p - buf) + n->len[i] <= len) {
            h->str[i].p = (const char *) p;
            h->str[i].len = n->len[i];
            p = ngx_cpymem(p, src, n->len[i]);

        } else {
            h->str[i].p = NULL;
            h->str[i].len = 0;
        }

        src += n->len[i];
    }
}


/* The agent's pending holds (under the lock). */

static ngx_uint_t
ngx_http_agentgov_holds_pending(ngx_http_agentgov_store_t *s, ag_str_t agent)
{
    ngx_uint_t                      n;
    ngx_queue_t                    *q;
    ngx_http_agentgov_hold_node_t  *o;

    n = 0;

    for (q = ngx_queue_head(&s->sh->holds_queue);
         q != ngx_queue_sentinel(&s->sh->holds_queue);
         q = ngx_queue_next(q))
    {
        o = ngx_queue_data(q, ngx_http_agentgov_hold_node_t, queue);

        /* the agent is the string after the id */
        if (o->state == AG_HOLD_PENDING
            && o->len[NGX_HTTP_AGENTGOV_H_AGENT] == agent.len
            && ngx_memcmp(o->str + o->len[NGX_HTTP_AGENTGOV_H_ID], agent.p,
                          agent.len) == 0)
        {
            n++;
        }
    }

    return n;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_hold_add(ngx_http_agentgov_store_t *s,
    const ngx_http_agentgov_hold_t *h, ngx_uint_t max_pending, int64_t now)
{
    u_char                         *p;
    size_t                          strs;
    ngx_uint_t                      i;
    ngx_http_agentgov_hold_node_t  *n;
    ngx_http_agentgov_store_rc_e    rc;

    strs = 0;

    for (i = 0; i < NGX_HTTP_AGENTGOV_H_N; i++) {
        if (h->str[i].len > 0xffff) {
            return NGX_AGENTGOV_STORE_ERROR;
        }

        strs += h->str[i].len;
    }

    ngx_shmtx_lock(&s->shpool->mutex);

    ngx_http_agentgov_holds_expire(s, now, 0);

    /* holds no worker will close must not count against the limit; the
       sweep (a kill() per pending hold) runs only when the limit is hit,
       not for every held call */
    if (max_pending
        && ngx_http_agentgov_holds_pending(s, h->str[NGX_HTTP_AGENTGOV_H_AGENT])
           >= max_pending)
    {
        ngx_http_agentgov_holds_sweep(s, now);

        if (ngx_http_agentgov_holds_pending(s,
                                            h->str[NGX_HTTP_AGENTGOV_H_AGENT])
            >= max_pending)
        {
            rc = NGX_AGENTGOV_STORE_LIMIT;
            goto done;
        }
    }

    n = ngx_http_agentgov_alloc(s, offsetof(ngx_http_agentgov_hold_node_t,
                                            str) + strs, now);
    if (n == NULL) {
        ngx_http_agentgov_holds_expire(s, now, 1);

        n = ngx_slab_alloc_locked(s->shpool,
                           offsetof(ngx_http_agentgov_hold_node_t, str) + strs);
        if (n == NULL) {
            rc = NGX_AGENTGOV_STORE_FULL;
            goto done;
        }
    }

    ngx_memzero(n, offsetof(ngx_http_agentgov_hold_node_t, str));

    n->pid = h->pid;
    n->requested = h->requested;
    n->expires = h->expires;
    n->grant_ttl = h->grant_ttl;
    n->state = AG_HOLD_PENDING;

    p = n->str;

    /* no decision yet: no votes, no reason */
    for (i = 0; i < NGX_HTTP_AGENTGOV_H_DECISION; i++) {
        n->len[i] = (u_short) h->str[i].len;

        if (h->str[i].len) {
            p = ngx_cpymem(p, h->str[i].p, h->str[i].len);
        }
    }

    n->sn.str.data = n->str;
    n->sn.str.len = n->len[NGX_HTTP_AGENTGOV_H_ID];
    n->sn.node.key = ngx_http_agentgov_hash(n->str, n->sn.str.len);

    ngx_rbtree_insert(&s->sh->holds, &n->sn.node);
    ngx_queue_insert_tail(&s->sh->holds_queue, &n->queue);
    s->sh->nholds++;
    s->sh->pending++;

    rc = NGX_AGENTGOV_STORE_OK;

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_hold_get(ngx_http_agentgov_store_t *s, ag_str_t id,
    ngx_http_agentgov_hold_t *h, u_char *buf, size_t len)
{
    ngx_http_agentgov_hold_node_t  *n;

    ngx_shmtx_lock(&s->shpool->mutex);

    n = ngx_http_agentgov_hold_lookup(s, id);
    if (n) {
        ngx_http_agentgov_hold_copy(n, h, buf, len);
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    return n ? NGX_AGENTGOV_STORE_OK : NGX_AGENTGOV_STORE_NOT_FOUND;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_hold_update(ngx_http_agentgov_store_t *s, ag_str_t id,
    ngx_http_agentgov_hold_pt handler, void *data, int64_t now,
    ngx_int_t *result)
{
    u_char                          rbuf[NGX_HTTP_AGENTGOV_HOLD_REASON];
    u_char                         *reason;
    size_t                          rlen;
    ag_hold_t                       votes;
    ag_hold_vote_t                 *nv;
    ngx_http_agentgov_hold_t        view;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_hold_node_t  *n;

    rc = NGX_AGENTGOV_STORE_OK;
    reason = NULL;

    ngx_shmtx_lock(&s->shpool->mutex);

    n = ngx_http_agentgov_hold_lookup(s, id);
    if (n == NULL) {
        ngx_shmtx_unlock(&s->shpool->mutex);
        return NGX_AGENTGOV_STORE_NOT_FOUND;
    }

    ngx_http_agentgov_hold_copy(n, &view, NULL, 0);
    votes = view.votes;
    rlen = 0;

    /* the first decision reason given is the one kept */
    *result = handler(data, &view, &votes, n->reason ? NULL : rbuf, &rlen);

    if (rlen && rlen <= sizeof(rbuf)) {
        reason = ngx_http_agentgov_alloc(s, rlen, now);
        if (reason == NULL) {
            goto full;
        }

        ngx_memcpy(reason, rbuf, rlen);
    }

    nv = n->votes;

    if (votes.nvotes != n->nvotes) {
        nv = ngx_http_agentgov_alloc(s, votes.nvotes * sizeof(ag_hold_vote_t),
                                     now);
        if (nv == NULL) {
            goto full;
        }

        if (n->votes) {
            ngx_slab_free_locked(s->shpool, n->votes);
        }
    }

    /* nothing can fail from here: the decision is taken whole or not */

    if (votes.nvotes) {
        ngx_memcpy(nv, votes.votes, votes.nvotes * sizeof(ag_hold_vote_t));
    }

    n->votes = nv;
    n->nvotes = votes.nvotes;
    n->state = votes.state;

    if (reason) {
        n->reason = reason;
        n->len[NGX_HTTP_AGENTGOV_H_DECISION] = (u_short) rlen;
    }

    if (n->state != AG_HOLD_PENDING && n->closed == 0) {
        ngx_http_agentgov_hold_closed(s, n, now);
    }

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;

full:

    if (reason) {
        ngx_slab_free_locked(s->shpool, reason);
    }

    *result = 0;
    rc = NGX_AGENTGOV_STORE_FULL;
    goto done;
}


static ngx_uint_t
ngx_http_agentgov_hold_str_is(ngx_http_agentgov_hold_t *h, ngx_uint_t i,
    ag_str_t v)
{
    return h->str[i].len == v.len
           && ngx_memcmp(h->str[i].p, v.p, v.len) == 0;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_hold_grant(ngx_http_agentgov_store_t *s, ag_str_t id,
    ag_str_t agent, ag_str_t task, ag_str_t digest, int64_t now)
{
    ngx_http_agentgov_hold_t        view;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_hold_node_t  *n;

    ngx_shmtx_lock(&s->shpool->mutex);

    n = ngx_http_agentgov_hold_lookup(s, id);

    if (n == NULL) {
        rc = NGX_AGENTGOV_STORE_NOT_FOUND;
        goto done;
    }

    ngx_http_agentgov_hold_copy(n, &view, NULL, 0);

    if (n->grant_ttl == 0 || n->used
        || n->state != AG_HOLD_APPROVED
        || now > n->closed + n->grant_ttl
        || !ngx_http_agentgov_hold_str_is(&view, NGX_HTTP_AGENTGOV_H_AGENT,
                                          agent)
        || !ngx_http_agentgov_hold_str_is(&view, NGX_HTTP_AGENTGOV_H_TASK,
                                          task)
        || view.str[NGX_HTTP_AGENTGOV_H_DIGEST].len != digest.len
        || CRYPTO_memcmp(view.str[NGX_HTTP_AGENTGOV_H_DIGEST].p, digest.p,
                         digest.len) != 0)
    {
        rc = NGX_AGENTGOV_STORE_NOT_LIVE;
        goto done;
    }

    n->used = 1;
    rc = NGX_AGENTGOV_STORE_OK;

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


void
ngx_http_agentgov_store_hold_unrecorded(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_holds_pt handler, void *data)
{
    ngx_queue_t                    *q;
    ngx_http_agentgov_hold_t        view;
    ngx_http_agentgov_hold_node_t  *h;

    ngx_shmtx_lock(&s->shpool->mutex);

    for (q = ngx_queue_head(&s->sh->holds_queue);
         q != ngx_queue_sentinel(&s->sh->holds_queue);
         q = ngx_queue_next(q))
    {
        h = ngx_queue_data(q, ngx_http_agentgov_hold_node_t, queue);

        if (h->unrecorded) {
            h->unrecorded = 0;
            ngx_http_agentgov_hold_copy(h, &view, NULL, 0);
            handler(data, &view);
        }
    }

    ngx_shmtx_unlock(&s->shpool->mutex);
}


ngx_uint_t
ngx_http_agentgov_store_hold_counter(ngx_http_agentgov_store_t *s)
{
    /* a word read without the lock: a torn or stale value only means
       one more or one less look at the parked requests */
    return *(volatile ngx_uint_t *) &s->sh->decisions;
}


void
ngx_http_agentgov_store_hold_list(ngx_http_agentgov_store_t *s, int state,
    ngx_uint_t limit, ngx_http_agentgov_holds_pt handler, void *data)
{
    ngx_uint_t                      n;
    ngx_queue_t                    *q;
    ngx_http_agentgov_hold_t        view;
    ngx_http_agentgov_hold_node_t  *h;

    n = 0;

    ngx_shmtx_lock(&s->shpool->mutex);

    ngx_http_agentgov_holds_sweep(s, ngx_time());

    for (q = ngx_queue_last(&s->sh->holds_queue);
         q != ngx_queue_sentinel(&s->sh->holds_queue) && n < limit;
         q = ngx_queue_prev(q))
    {
        h = ngx_queue_data(q, ngx_http_agentgov_hold_node_t, queue);

        if (state >= 0 && (int) h->state != state) {
            continue;
        }

        ngx_http_agentgov_hold_copy(h, &view, NULL, 0);
        handler(data, &view);
        n++;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_hold_find(ngx_http_agentgov_store_t *s, ag_str_t agent,
    ag_str_t task, ag_str_t digest, int64_t now, u_char *id)
{
    ngx_queue_t                    *q;
    ngx_http_agentgov_hold_t        view;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_hold_node_t  *n;

    rc = NGX_AGENTGOV_STORE_NOT_FOUND;

    ngx_shmtx_lock(&s->shpool->mutex);

    for (q = ngx_queue_last(&s->sh->holds_queue);
         q != ngx_queue_sentinel(&s->sh->holds_queue);
         q = ngx_queue_prev(q))
    {
        n = ngx_queue_data(q, ngx_http_agentgov_hold_node_t, queue);

        if (n->grant_ttl == 0) {
            continue;
        }

        ngx_http_agentgov_hold_copy(n, &view, NULL, 0);

        if (view.str[NGX_HTTP_AGENTGOV_H_DIGEST].len != digest.len
            || CRYPTO_memcmp(view.str[NGX_HTTP_AGENTGOV_H_DIGEST].p, digest.p,
                             digest.len) != 0
            || !ngx_http_agentgov_hold_str_is(&view, NGX_HTTP_AGENTGOV_H_AGENT,
                                              agent)
            || !ngx_http_agentgov_hold_str_is(&view, NGX_HTTP_AGENTGOV_H_TASK,
                                              task))
        {
            continue;
        }

        if (n->state == AG_HOLD_PENDING && now <= n->expires) {
            rc = NGX_AGENTGOV_STORE_NOT_LIVE;

        } else if (n->state == AG_HOLD_APPROVED && !n->used
                   && now <= n->closed + n->grant_ttl)
        {
            n->used = 1;
            rc = NGX_AGENTGOV_STORE_OK;

        } else {
            /* the newest such hold is closed: a new one is asked for */
            break;
        }

        ngx_memcpy(id, n->str, AG_TASK_ID_LEN);
        break;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


/* --- MCP sessions and tool pins ------------------------------------------- */

/*
 * A session: its id's node, the queue (oldest first), its expiry (the task's
 * at binding), then the id, the agent and the task. Sessions past their
 * expiry are dropped lazily, and the oldest ones when memory is short: a
 * session the gateway no longer knows is refused with 404, which makes an
 * MCP client start a new one.
 */
typedef struct {
    ngx_str_node_t                   sn;
    ngx_queue_t                      queue;
    int64_t                          expires;
    u_short                          agent_len;
    u_short                          task_len;
    u_char                           str[1];
} ngx_http_agentgov_session_t;

/* A pin: "tool NUL name" as its node's string; never dropped but by a new
   zone. */
typedef struct {
    ngx_str_node_t                   sn;
    ngx_queue_t                      queue;
    u_char                           pinned[AG_MCP_DIGEST_HEX];
    u_char                           seen[AG_MCP_DIGEST_HEX];
    u_char                           changed;    /* seen differs */
    u_char                           str[1];
} ngx_http_agentgov_pin_t;


static void
ngx_http_agentgov_session_free(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_session_t *n)
{
    ngx_queue_remove(&n->queue);
    ngx_rbtree_delete(&s->sh->sessions, &n->sn.node);
    ngx_slab_free_locked(s->shpool, n);
}


static ngx_http_agentgov_session_t *
ngx_http_agentgov_session_lookup(ngx_http_agentgov_store_t *s,
    ag_str_t session, int64_t now)
{
    ngx_uint_t                    i;
    ngx_str_t                     key;
    ngx_queue_t                  *q;
    ngx_http_agentgov_session_t  *n;

    /* a few expired ones go with every look */
    for (i = 0; i < 8 && !ngx_queue_empty(&s->sh->sessions_queue); i++) {
        q = ngx_queue_head(&s->sh->sessions_queue);
        n = ngx_queue_data(q, ngx_http_agentgov_session_t, queue);

        if (n->expires > now) {
            break;
        }

        ngx_http_agentgov_session_free(s, n);
    }

    key.data = (u_char *) session.p;
    key.len = session.len;

    n = (ngx_http_agentgov_session_t *)
            ngx_str_rbtree_lookup(&s->sh->sessions, &key,
                                  ngx_http_agentgov_hash(session.p,
                                                         session.len));

    if (n && n->expires <= now) {
        ngx_http_agentgov_session_free(s, n);
        return NULL;
    }

    return n;
}


static ngx_uint_t
ngx_http_agentgov_session_is(ngx_http_agentgov_session_t *n, ag_str_t agent,
    ag_str_t task)
{
    return n->agent_len == agent.len && n->task_len == task.len
           && ngx_memcmp(n->str + n->sn.str.len, agent.p, agent.len) == 0
           && ngx_memcmp(n->str + n->sn.str.len + agent.len, task.p,
                         task.len) == 0;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_session_bind(ngx_http_agentgov_store_t *s,
    ag_str_t session, ag_str_t agent, ag_str_t task, int64_t expires,
    int64_t now)
{
    u_char                        *p;
    size_t                         size;
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_http_agentgov_session_t   *n;
    ngx_http_agentgov_store_rc_e   rc;

    if (session.len == 0 || session.len > NGX_HTTP_AGENTGOV_SESSION_MAX
        || agent.len > 0xffff || task.len > 0xffff)
    {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    size = offsetof(ngx_http_agentgov_session_t, str) + session.len
           + agent.len + task.len;

    ngx_shmtx_lock(&s->shpool->mutex);

    n = ngx_http_agentgov_session_lookup(s, session, now);

    if (n) {
        rc = ngx_http_agentgov_session_is(n, agent, task)
             ? NGX_AGENTGOV_STORE_OK : NGX_AGENTGOV_STORE_NOT_LIVE;
        goto done;
    }

    n = ngx_http_agentgov_alloc(s, size, now);

    /* then the oldest sessions make room: theirs start again */
    for (i = 0; n == NULL && i < 64; i++) {
        if (ngx_queue_empty(&s->sh->sessions_queue)) {
            break;
        }

        q = ngx_queue_head(&s->sh->sessions_queue);
        ngx_http_agentgov_session_free(s,
                      ngx_queue_data(q, ngx_http_agentgov_session_t, queue));

        n = ngx_slab_alloc_locked(s->shpool, size);
    }

    if (n == NULL) {
        rc = NGX_AGENTGOV_STORE_FULL;
        goto done;
    }

    n->expires = expires;
    n->agent_len = (u_short) agent.len;
    n->task_len = (u_short) task.len;

    p = ngx_cpymem(n->str, session.p, session.len);
    p = ngx_cpymem(p, agent.p, agent.len);
    (void) ngx_cpymem(p, task.p, task.len);

    n->sn.str.data = n->str;
    n->sn.str.len = session.len;
    n->sn.node.key = ngx_http_agentgov_hash(session.p, session.len);

    ngx_rbtree_insert(&s->sh->sessions, &n->sn.node);
    ngx_queue_insert_tail(&s->sh->sessions_queue, &n->queue);

    rc = NGX_AGENTGOV_STORE_OK;

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_session_check(ngx_http_agentgov_store_t *s,
    ag_str_t session, ag_str_t agent, ag_str_t task, int64_t now)
{
    ngx_http_agentgov_session_t   *n;
    ngx_http_agentgov_store_rc_e   rc;

    ngx_shmtx_lock(&s->shpool->mutex);

    n = ngx_http_agentgov_session_lookup(s, session, now);

    rc = n == NULL ? NGX_AGENTGOV_STORE_NOT_FOUND
         : ngx_http_agentgov_session_is(n, agent, task)
           ? NGX_AGENTGOV_STORE_OK : NGX_AGENTGOV_STORE_NOT_LIVE;

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


#define NGX_HTTP_AGENTGOV_PIN_KEY  (NGX_HTTP_AGENTGOV_NAME_MAX + 1            \
                                    + AG_MCP_NAME_MAX)

static ngx_http_agentgov_pin_t *
ngx_http_agentgov_pin_lookup(ngx_http_agentgov_store_t *s, ag_str_t tool,
    ag_str_t name, u_char *key, size_t *klen)
{
    ngx_str_t  k;

    /* tool names are at most 255 bytes, MCP names AG_MCP_NAME_MAX */
    k.data = key;
    k.len = ngx_cpymem(ngx_cpymem(key, tool.p, tool.len) + 1, name.p,
                       name.len) - key;
    key[tool.len] = '\0';
    *klen = k.len;

    return (ngx_http_agentgov_pin_t *)
               ngx_str_rbtree_lookup(&s->sh->pins, &k,
                                     ngx_http_agentgov_hash(k.data, k.len));
}


/* The pin of (tool, name), made (empty) when there is none; NULL when the
   zone is full. *created says which. */

static ngx_http_agentgov_pin_t *
ngx_http_agentgov_pin_obtain(ngx_http_agentgov_store_t *s, ag_str_t tool,
    ag_str_t name, int64_t now, ngx_uint_t *created)
{
    u_char                    key[NGX_HTTP_AGENTGOV_PIN_KEY];
    size_t                    klen;
    ngx_http_agentgov_pin_t  *n;

    *created = 0;

    n = ngx_http_agentgov_pin_lookup(s, tool, name, key, &klen);
    if (n != NULL) {
        return n;
    }

    n = ngx_http_agentgov_alloc(s, offsetof(ngx_http_agentgov_pin_t, str)
                                   + klen, now);
    if (n == NULL) {
        return NULL;
    }

    *created = 1;

    ngx_memzero(n, offsetof(ngx_http_agentgov_pin_t, str));
    ngx_memcpy(n->str, key, klen);

    n->sn.str.data = n->str;
    n->sn.str.len = klen;
    n->sn.node.key = ngx_http_agentgov_hash(key, klen);

    ngx_rbtree_insert(&s->sh->pins, &n->sn.node);
    ngx_queue_insert_tail(&s->sh->pins_queue, &n->queue);

    s->sh->npins++;
    s->sh->pins_bytes += ngx_http_agentgov_pin_size(klen);

    return n;
}

ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_pin_see(ngx_http_agentgov_store_t *s, ag_str_t tool,
    ag_str_t name, ag_str_t digest, ag_str_t policy_pin,
    ngx_http_agentgov_pin_e *result)
{
    ngx_uint_t                     created;
    ngx_http_agentgov_pin_t       *n;
    ngx_http_agentgov_store_rc_e   rc;

    if (tool.len > NGX_HTTP_AGENTGOV_NAME_MAX || name.len > AG_MCP_NAME_MAX
        || digest.len != AG_MCP_DIGEST_HEX
        || (policy_pin.len && policy_pin.len != AG_MCP_DIGEST_HEX))
    {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    rc = NGX_AGENTGOV_STORE_OK;

    ngx_shmtx_lock(&s->shpool->mutex);

    n = ngx_http_agentgov_pin_obtain(s, tool, name, ngx_time(), &created);

    if (n == NULL) {
        rc = NGX_AGENTGOV_STORE_FULL;
        goto done;
    }

    if (created) {
        ngx_memcpy(n->pinned, policy_pin.len ? policy_pin.p : digest.p,
                   AG_MCP_DIGEST_HEX);

        s->sh->gen++;

        if (policy_pin.len == 0) {
            *result = NGX_HTTP_AGENTGOV_PIN_NEW;
            goto done;
        }
    }

    if (ngx_memcmp(n->pinned, digest.p, AG_MCP_DIGEST_HEX) == 0) {
        *result = NGX_HTTP_AGENTGOV_PIN_SAME;
        n->changed = 0;
        goto done;
    }

    *result = (n->changed
               && ngx_memcmp(n->seen, digest.p, AG_MCP_DIGEST_HEX) == 0)
              ? NGX_HTTP_AGENTGOV_PIN_STILL_CHANGED
              : NGX_HTTP_AGENTGOV_PIN_CHANGED;

    if (*result == NGX_HTTP_AGENTGOV_PIN_CHANGED) {
        ngx_memcpy(n->seen, digest.p, AG_MCP_DIGEST_HEX);
        n->changed = 1;
        s->sh->gen++;
    }

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_pin_changed(ngx_http_agentgov_store_t *s,
    ag_str_t tool, ag_str_t name)
{
    u_char                    key[NGX_HTTP_AGENTGOV_PIN_KEY];
    size_t                    klen;
    ngx_uint_t                changed;
    ngx_http_agentgov_pin_t  *n;

    if (tool.len > NGX_HTTP_AGENTGOV_NAME_MAX || name.len > AG_MCP_NAME_MAX) {
        return NGX_AGENTGOV_STORE_NOT_FOUND;
    }

    ngx_shmtx_lock(&s->shpool->mutex);

    n = ngx_http_agentgov_pin_lookup(s, tool, name, key, &klen);
    changed = n && n->changed;

    ngx_shmtx_unlock(&s->shpool->mutex);

    return changed ? NGX_AGENTGOV_STORE_OK : NGX_AGENTGOV_STORE_NOT_FOUND;
}


ngx_http_agentgov_store_rc_e
ngx_http_agentgov_store_pin_accept(ngx_http_agentgov_store_t *s, ag_str_t tool,
    ag_str_t name, ag_str_t digest)
{
    ngx_uint_t                     created;
    ngx_http_agentgov_pin_t       *n;
    ngx_http_agentgov_store_rc_e   rc;

    if (tool.len > NGX_HTTP_AGENTGOV_NAME_MAX || name.len > AG_MCP_NAME_MAX
        || digest.len != AG_MCP_DIGEST_HEX)
    {
        return NGX_AGENTGOV_STORE_ERROR;
    }

    rc = NGX_AGENTGOV_STORE_OK;

    ngx_shmtx_lock(&s->shpool->mutex);

    n = ngx_http_agentgov_pin_obtain(s, tool, name, ngx_time(), &created);

    if (n == NULL) {
        rc = NGX_AGENTGOV_STORE_FULL;
        goto done;
    }

    ngx_memcpy(n->pinned, digest.p, AG_MCP_DIGEST_HEX);

    if (n->changed && ngx_memcmp(n->seen, digest.p, AG_MCP_DIGEST_HEX) == 0) {
        n->changed = 0;
    }

    s->sh->gen++;

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


void
ngx_http_agentgov_store_pin_list(ngx_http_agentgov_store_t *s, ag_str_t tool,
    ngx_http_agentgov_pins_pt handler, void *data)
{
    ag_str_t                  name, pinned, seen;
    ngx_queue_t              *q;
    ngx_http_agentgov_pin_t  *n;

    ngx_shmtx_lock(&s->shpool->mutex);

    for (q = ngx_queue_head(&s->sh->pins_queue);
         q != ngx_queue_sentinel(&s->sh->pins_queue);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_agentgov_pin_t, queue);

        if (n->sn.str.len <= tool.len || n->str[tool.len] != '\0'
            || ngx_memcmp(n->str, tool.p, tool.len) != 0)
        {
            continue;
        }

        name.p = (const char *) n->str + tool.len + 1;
        name.len = n->sn.str.len - tool.len - 1;
        pinned.p = (const char *) n->pinned;
        pinned.len = AG_MCP_DIGEST_HEX;
        seen.p = (const char *) n->seen;
        seen.len = n->changed ? AG_MCP_DIGEST_HEX : 0;

        handler(data, name, pinned, seen);
    }

    ngx_shmtx_unlock(&s->shpool->mutex);
}


/* Whether the last write of agentgov_state failed (for /health). */

ngx_uint_t
ngx_http_agentgov_store_state_failing(ngx_http_agentgov_store_t *s)
{
    ngx_uint_t  failing;

    if (s == NULL || s->amcf->state_file.len == 0) {
        return 0;
    }

    ngx_shmtx_lock(&s->shpool->mutex);
    failing = s->sh->save_failed;
    ngx_shmtx_unlock(&s->shpool->mutex);

    return failing;
}


/* --- agentgov_state: saving ----------------------------------------------- */

/*
 * Whether the file lacks changes of the zone (under the lock). A path other
 * than the one last written counts too, but only that of the configuration
 * loaded last: the workers of the one before, still finishing after a
 * reload, would write theirs back, then the new workers theirs, and so on.
 */

static ngx_uint_t
ngx_http_agentgov_state_pending(ngx_http_agentgov_store_t *s)
{
    return s->sh->gen != s->sh->saved_gen
           || (s->sh->saved_path != s->state_hash
               && s->sh->conf_path == s->state_hash);
}


/*
 * Write the zone's state if the file lacks some of it. With wait, the
 * caller's change is on disk (or the failure logged) when this returns:
 * under FILE.lock, the holder before us either wrote it or left it to us.
 * Without wait, nothing is written within NGX_HTTP_AGENTGOV_SAVE_DELAY of
 * the last write, and a writer that holds the lock is left alone: the next
 * tick of the save timer comes back. NGX_ERROR if a write failed.
 */

static ngx_int_t
ngx_http_agentgov_state_save(ngx_http_agentgov_store_t *s, ngx_uint_t wait)
{
    u_char     *snap, *text;
    size_t      size, len;
    uint64_t    gen;
    ngx_fd_t    fd;
    ngx_int_t   rc;
    ngx_str_t  *file;
    ngx_uint_t  pending;

    file = &s->amcf->state_file;

    if (file->len == 0) {
        return NGX_OK;
    }

    ngx_shmtx_lock(&s->shpool->mutex);

    pending = ngx_http_agentgov_state_pending(s);

    if (!wait
        && (ngx_msec_int_t) (ngx_current_msec - s->sh->saved_at)
           < NGX_HTTP_AGENTGOV_SAVE_DELAY)
    {
        pending = 0;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    if (!pending) {
        return NGX_OK;
    }

    fd = ngx_http_agentgov_state_lock(file, wait);

    if (fd == NGX_INVALID_FILE) {
        rc = NGX_ERROR;
        goto failed;
    }

    if (fd == NGX_AGAIN) {
        return NGX_OK;
    }

    /* NULL if the holder before us saved everything */

    snap = ngx_http_agentgov_snapshot(s, &gen, &size);

    if (snap == NULL) {
        (void) close(fd);

        ngx_shmtx_lock(&s->shpool->mutex);
        rc = s->sh->save_failed ? NGX_ERROR : NGX_OK;
        ngx_shmtx_unlock(&s->shpool->mutex);

        return rc;
    }

    text = ngx_http_agentgov_state_encode(snap, size, &len);
    ngx_free(snap);

    if (text == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "agentgov_state \"%V\": cannot encode the state",
                      file);
        rc = NGX_ERROR;

    } else {
        rc = ngx_http_agentgov_state_write(file, text, len, ngx_cycle->log);
        ngx_free(text);
    }

    ngx_shmtx_lock(&s->shpool->mutex);

    if (rc == NGX_OK) {
        if (gen > s->sh->saved_gen || s->sh->saved_path != s->state_hash) {
            s->sh->saved_gen = gen;
            s->sh->saved_path = s->state_hash;
        }

        s->sh->saved_at = ngx_current_msec;
        s->sh->save_failed = 0;

    } else {
        s->sh->save_failed = 1;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    (void) close(fd);

    return rc;

failed:

    ngx_shmtx_lock(&s->shpool->mutex);
    s->sh->save_failed = 1;
    ngx_shmtx_unlock(&s->shpool->mutex);

    return rc;
}


/*
 * FILE.lock, open and locked: NGX_INVALID_FILE on failure (logged), or
 * NGX_AGAIN without wait when another process holds it.
 */

static ngx_fd_t
ngx_http_agentgov_state_lock(ngx_str_t *file, ngx_uint_t wait)
{
    ngx_fd_t   fd;
    ngx_err_t  err;
    u_char     name[NGX_MAX_PATH];

    ngx_sprintf(name, "%V.lock%Z", file);

    fd = open((char *) name, O_RDONLY|O_CREAT|O_CLOEXEC, 0600);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "agentgov_state: open(\"%s\") failed (the "
                      "directory must be writable by the workers)", name);
        return NGX_INVALID_FILE;
    }

    ngx_http_agentgov_state_chown(fd, name);

    while (flock(fd, wait ? LOCK_EX : LOCK_EX|LOCK_NB) == -1) {
        err = ngx_errno;

        if (err == NGX_EINTR) {
            continue;
        }

        (void) close(fd);

        if (!wait && err == EWOULDBLOCK) {
            return NGX_AGAIN;
        }

        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, err,
                      "agentgov_state: flock(\"%s\") failed", name);
        return NGX_INVALID_FILE;
    }

    return fd;
}


/*
 * The master writes too, at a reload that changes the zone's size: as
 * root, what it creates (FILE.lock, FILE.tmp then FILE) goes to the worker
 * processes' user, who must open FILE.lock and replace FILE afterwards.
 */

static void
ngx_http_agentgov_state_chown(ngx_fd_t fd, u_char *name)
{
    ngx_core_conf_t  *ccf;

    if (geteuid() != 0) {
        return;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    if (ccf == NULL || ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT
        || ccf->user == 0)
    {
        return;
    }

    if (fchown(fd, ccf->user, ccf->group) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "agentgov_state: fchown(\"%s\") failed", name);
    }
}


/*
 * A binary copy of what agentgov_state keeps, taken under the lock: NULL if
 * the file already holds the zone's generation (or on failure, logged).
 */

static u_char *
ngx_http_agentgov_snapshot(ngx_http_agentgov_store_t *s, uint64_t *gen,
    size_t *size)
{
    u_char                         *snap, *p, *end;
    size_t                          n, strs;
    ngx_rbtree_node_t              *node;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_agent_t      *an;
    ngx_queue_t                    *q;
    ngx_http_agentgov_pin_t        *pin;
    ngx_http_agentgov_pin_snap_t   *ps;
    ngx_http_agentgov_snapshot_t   *hdr;
    ngx_http_agentgov_task_node_t  *rec;

    sh = s->sh;
    snap = NULL;

    ngx_shmtx_lock(&s->shpool->mutex);

    if (!ngx_http_agentgov_state_pending(s)) {
        goto done;
    }

    n = sizeof(ngx_http_agentgov_snapshot_t) + sh->susp_bytes
        + sh->live_bytes + sh->pins_bytes;

    snap = ngx_alloc(n, ngx_cycle->log);
    if (snap == NULL) {
        sh->save_failed = 1;
        goto done;
    }

    p = snap + sizeof(ngx_http_agentgov_snapshot_t);
    end = snap + n;

    hdr = (ngx_http_agentgov_snapshot_t *) snap;
    hdr->stopped = sh->stopped;
    hdr->nsuspended = 0;
    hdr->ntasks = 0;
    hdr->npins = 0;

    if (sh->agents.root != sh->agents.sentinel) {
        for (node = ngx_rbtree_min(sh->agents.root, sh->agents.sentinel);
             node;
             node = ngx_rbtree_next(&sh->agents, node))
        {
            an = (ngx_http_agentgov_agent_t *) node;

            if (!an->suspended) {
                continue;
            }

            if ((size_t) (end - p) < ngx_http_agentgov_name_size(an->len)) {
                goto inconsistent;
            }

            *(size_t *) p = an->len;
            ngx_memcpy(p + sizeof(size_t), an->name, an->len);
            p += ngx_http_agentgov_name_size(an->len);
            hdr->nsuspended++;
        }
    }

    if (sh->tasks.root != sh->tasks.sentinel) {
        for (node = ngx_rbtree_min(sh->tasks.root, sh->tasks.sentinel);
             node;
             node = ngx_rbtree_next(&sh->tasks, node))
        {
            rec = (ngx_http_agentgov_task_node_t *) node;

            if (!rec->d.counted) {
                continue;
            }

            strs = ngx_http_agentgov_data_strs(&rec->d);

            if ((size_t) (end - p) < ngx_http_agentgov_data_size(strs)) {
                goto inconsistent;
            }

            ngx_memcpy(p, &rec->d,
                       offsetof(ngx_http_agentgov_task_data_t, str) + strs);
            p += ngx_http_agentgov_data_size(strs);
            hdr->ntasks++;
        }
    }

    for (q = ngx_queue_head(&sh->pins_queue);
         q != ngx_queue_sentinel(&sh->pins_queue);
         q = ngx_queue_next(q))
    {
        pin = ngx_queue_data(q, ngx_http_agentgov_pin_t, queue);

        if ((size_t) (end - p) < ngx_http_agentgov_pin_size(pin->sn.str.len)) {
            goto inconsistent;
        }

        ps = (ngx_http_agentgov_pin_snap_t *) p;
        ps->klen = pin->sn.str.len;
        ps->changed = pin->changed;
        ngx_memcpy(ps->pinned, pin->pinned, AG_MCP_DIGEST_HEX);
        ngx_memcpy(ps->seen, pin->seen, AG_MCP_DIGEST_HEX);
        ngx_memcpy(p + sizeof(ngx_http_agentgov_pin_snap_t), pin->str,
                   pin->sn.str.len);
        p += ngx_http_agentgov_pin_size(pin->sn.str.len);
        hdr->npins++;
    }

    *gen = sh->gen;
    *size = p - snap;

done:

    ngx_shmtx_unlock(&s->shpool->mutex);

    return snap;

inconsistent:

    sh->save_failed = 1;

    ngx_shmtx_unlock(&s->shpool->mutex);

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "agentgov_zone \"%V\": inconsistent snapshot size",
                  &s->shm_zone->shm.name);
    ngx_free(snap);

    return NULL;
}


/*
 * The JSON text of a snapshot, or NULL. Written by hand: building it with
 * jansson took ten times longer, and this runs on every change.
 */

static u_char *
ngx_http_agentgov_state_encode(u_char *snap, size_t size, size_t *len)
{
    u_char                         *text, *p, *q, *end, *str;
    size_t                          n, bound;
    ngx_uint_t                      i, j;
    ngx_http_agentgov_task_data_t  *d;
    ngx_http_agentgov_pin_snap_t   *ps;
    ngx_http_agentgov_snapshot_t   *hdr;

    hdr = (ngx_http_agentgov_snapshot_t *) snap;
    end = snap + size;

    /* every byte of a string escapes to at most 6 (\u00XX) */

    bound = sizeof("{\"version\":,\"stopped\":false,\"suspended\":[],"
                   "\"tasks\":[],\"pins\":[]}\n") + NGX_INT_T_LEN;

    p = snap + sizeof(ngx_http_agentgov_snapshot_t);

    for (i = 0; i < hdr->nsuspended; i++) {
        n = *(size_t *) p;
        bound += 6 * n + 3;
        p += ngx_http_agentgov_name_size(n);
    }

    q = p;

    for (i = 0; i < hdr->ntasks && p < end; i++) {
        d = (ngx_http_agentgov_task_data_t *) p;
        n = ngx_http_agentgov_data_strs(d);
        bound += 6 * n + NGX_HTTP_AGENTGOV_NSTR * 16
                 + 6 * (NGX_INT64_LEN + 16) + 3;
        p += ngx_http_agentgov_data_size(n);
    }

    for (i = 0; i < hdr->npins && p < end; i++) {
        ps = (ngx_http_agentgov_pin_snap_t *) p;
        bound += 6 * ps->klen + 3 * AG_MCP_DIGEST_HEX + 64;
        p += ngx_http_agentgov_pin_size(ps->klen);
    }

    text = ngx_alloc(bound, ngx_cycle->log);
    if (text == NULL) {
        return NULL;
    }

    p = snap + sizeof(ngx_http_agentgov_snapshot_t);

    str = ngx_sprintf(text, "{\"version\":%d,\"stopped\":%s,\"suspended\":[",
                      NGX_HTTP_AGENTGOV_STATE_VERSION,
                      hdr->stopped ? "true" : "false");

    for (i = 0; i < hdr->nsuspended; i++) {
        n = *(size_t *) p;

        if (i) {
            *str++ = ',';
        }

        str = ngx_http_agentgov_json_str(str, p + sizeof(size_t), n);
        p += ngx_http_agentgov_name_size(n);
    }

    str = ngx_cpymem(str, "],\"tasks\":[", sizeof("],\"tasks\":[") - 1);

    p = q;

    for (i = 0; i < hdr->ntasks && p < end; i++) {
        d = (ngx_http_agentgov_task_data_t *) p;
        p += ngx_http_agentgov_data_size(ngx_http_agentgov_data_strs(d));

        if (i) {
            *str++ = ',';
        }

        *str++ = '{';

        q = d->str;

        for (j = 0; j < NGX_HTTP_AGENTGOV_NSTR; j++) {
            str = ngx_sprintf(str, "\"%s\":", ngx_http_agentgov_str_key[j]);
            n = ngx_http_agentgov_len(d, j);
            str = ngx_http_agentgov_json_str(str, q, n);
            *str++ = ',';
            q += n;
        }

        str = ngx_sprintf(str, "\"depth\":%d,\"granted\":%L,\"expires\":%L,"
                          "\"calls\":%L,\"bucket_mtok\":%L,"
                          "\"bucket_ms\":%L}",
                          (int) d->depth, d->granted, d->expires, d->calls,
                          d->bucket_mtok, d->bucket_ms);
    }

    str = ngx_cpymem(str, "],\"pins\":[", sizeof("],\"pins\":[") - 1);

    for (i = 0; i < hdr->npins && p < end; i++) {
        ps = (ngx_http_agentgov_pin_snap_t *) p;
        q = p + sizeof(ngx_http_agentgov_pin_snap_t);
        p += ngx_http_agentgov_pin_size(ps->klen);

        /* the key is "tool NUL name" */
        n = ngx_strnlen(q, ps->klen);

        str = ngx_cpymem(str, i ? ",{\"tool\":" : "{\"tool\":",
                         i ? sizeof(",{\"tool\":") - 1
                           : sizeof("{\"tool\":") - 1);
        str = ngx_http_agentgov_json_str(str, q, n);
        str = ngx_cpymem(str, ",\"name\":", sizeof(",\"name\":") - 1);
        str = ngx_http_agentgov_json_str(str, q + n + 1, ps->klen - n - 1);
        str = ngx_sprintf(str, ",\"sha256\":\"%*s\",\"changed\":",
                          (size_t) AG_MCP_DIGEST_HEX, ps->pinned);

        if (ps->changed) {
            str = ngx_sprintf(str, "\"%*s\"}", (size_t) AG_MCP_DIGEST_HEX,
                              ps->seen);
        } else {
            str = ngx_cpymem(str, "null}", sizeof("null}") - 1);
        }
    }

    str = ngx_cpymem(str, "]}\n", 3);

    *len = str - text;

    return text;
}


/*
 * A JSON string. Valid UTF-8 is copied; a byte that is not (which no string
 * taken from a JSON body can hold) becomes the code point of the same value,
 * so that the file always loads.
 */

static u_char *
ngx_http_agentgov_json_str(u_char *dst, u_char *src, size_t len)
{
    u_char      c;
    size_t      n;
    u_char     *end;

    static u_char  hex[] = "0123456789abcdef";

    end = src + len;

    *dst++ = '"';

    while (src < end) {
        c = *src;

        if (c >= 0x80) {
            n = ngx_http_agentgov_utf8_len(src, end - src);

            if (n) {
                dst = ngx_cpymem(dst, src, n);
                src += n;
                continue;
            }
        }

        src++;

        if (c == '"' || c == '\\') {
            *dst++ = '\\';
            *dst++ = c;

        } else if (c < 0x20 || c >= 0x80) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];

        } else {
            *dst++ = c;
        }
    }

    *dst++ = '"';

    return dst;
}


/* The length of the valid UTF-8 sequence at p (RFC 3629), or 0. */

static size_t
ngx_http_agentgov_utf8_len(u_char *p, size_t avail)
{
    size_t    n, i;
    uint32_t  u, min;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        u = p[0] & 0x1f;
        min = 0x80;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        u = p[0] & 0x0f;
        min = 0x800;

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        u = p[0] & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if (avail < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        u = (u << 6) | (p[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return 0;
    }

    return n;
}


/* FILE.tmp, fsync, rename over FILE, fsync of the directory. */

static ngx_int_t
ngx_http_agentgov_state_write(ngx_str_t *file, u_char *text, size_t len,
    ngx_log_t *log)
{
    u_char    *p, *dir;
    ssize_t    n;
    ngx_fd_t   fd;
    ngx_err_t  err;
    u_char     tmp[NGX_MAX_PATH], name[NGX_MAX_PATH];

    ngx_sprintf(tmp, "%V.tmp%Z", file);
    ngx_sprintf(name, "%V%Z", file);

    fd = open((char *) tmp, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0600);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "agentgov_state: open(\"%s\") failed", tmp);
        return NGX_ERROR;
    }

    /* an existing FILE.tmp keeps its mode otherwise */
    if (fchmod(fd, 0600) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "agentgov_state: fchmod(\"%s\") failed", tmp);
        goto failed;
    }

    ngx_http_agentgov_state_chown(fd, tmp);

    p = text;

    while (len) {
        n = write(fd, p, len);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          "agentgov_state: write(\"%s\") failed", tmp);
            goto failed;
        }

        p += n;
        len -= n;
    }

    if (fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "agentgov_state: fsync(\"%s\") failed", tmp);
        goto failed;
    }

    if (close(fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "agentgov_state: close(\"%s\") failed", tmp);
        fd = -1;
        goto failed;
    }

    fd = -1;

    if (ngx_rename_file(tmp, name) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "agentgov_state: rename(\"%s\", \"%s\") failed",
                      tmp, name);
        goto failed;
    }

    /* the rename itself is durable only once the directory is */

    dir = name + file->len;
    while (dir > name && dir[-1] != '/') {
        dir--;
    }

    if (dir > name) {
        *(dir == name + 1 ? dir : dir - 1) = '\0';

        fd = open((char *) name, O_RDONLY|O_DIRECTORY|O_CLOEXEC);

        if (fd == -1 || fsync(fd) == -1) {
            err = ngx_errno;

            if (fd != -1) {
                (void) close(fd);
            }

            ngx_log_error(NGX_LOG_ALERT, log, err,
                          "agentgov_state: fsync(\"%s\") failed", name);
            return NGX_ERROR;
        }

        (void) close(fd);
    }

    return NGX_OK;

failed:

    if (fd != -1) {
        (void) close(fd);
    }

    (void) unlink((char *) tmp);

    return NGX_ERROR;
}


/* --- agentgov_state: loading ---------------------------------------------- */

static ngx_int_t
ngx_http_agentgov_state_load(ngx_http_agentgov_store_t *s, ngx_log_t *log)
{
    json_t           *root;
    ngx_int_t         rc;
    ngx_str_t        *file;
    json_error_t      jerr;
    ngx_file_info_t   fi;

    file = &s->amcf->state_file;

    /* state_file.data is NUL-terminated by ngx_conf_full_name() */

    if (ngx_file_info(file->data, &fi) == NGX_FILE_ERROR) {

        if (ngx_errno == NGX_ENOENT) {
            /* nothing to restore: the first worker writes the file */
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "agentgov_state \"%V\": " ngx_file_info_n " failed",
                      file);
        return NGX_ERROR;
    }

    root = json_load_file((char *) file->data, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "agentgov_state \"%V\" is malformed: %s (line %d, "
                      "column %d); fix or remove it (removing it lifts "
                      "every suspension)",
                      file, jerr.text, jerr.line, jerr.column);
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&s->shpool->mutex);

    rc = ngx_http_agentgov_state_restore(s, root, ngx_time(), log, file);

    if (rc == NGX_OK) {
        /* the file holds what the zone holds */
        s->sh->saved_gen = s->sh->gen;
        s->sh->saved_path = s->state_hash;
    }

    ngx_shmtx_unlock(&s->shpool->mutex);

    json_decref(root);

    return rc;
}


/* One pin of agentgov_state: NULL, or what is wrong with it. */

static const char *
ngx_http_agentgov_state_pin(json_t *e)
{
    size_t       i;
    json_t      *v;
    const char  *key, *hex;

    if (!json_is_object(e)) {
        return "a pin is not an object";
    }

    json_object_foreach(e, key, v) {
        if (ngx_strcmp(key, "tool") != 0 && ngx_strcmp(key, "name") != 0
            && ngx_strcmp(key, "sha256") != 0
            && ngx_strcmp(key, "changed") != 0)
        {
            return ngx_http_agentgov_state_err("unknown key in a pin", key);
        }
    }

    v = json_object_get(e, "tool");
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > NGX_HTTP_AGENTGOV_NAME_MAX
        || ngx_strlen(json_string_value(v)) != json_string_length(v))
    {
        return "a pin's tool is not a name";
    }

    v = json_object_get(e, "name");
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > AG_MCP_NAME_MAX
        || ngx_strlen(json_string_value(v)) != json_string_length(v))
    {
        return "a pin's name is not an MCP tool name";
    }

    for (key = "sha256"; key; key = key[0] == 's' ? "changed" : NULL) {
        v = json_object_get(e, key);

        if (key[0] == 'c' && json_is_null(v)) {
            continue;
        }

        if (!json_is_string(v) || json_string_length(v) != AG_MCP_DIGEST_HEX) {
            return "a pin's digest is not 64 hex digits";
        }

        hex = json_string_value(v);

        for (i = 0; i < AG_MCP_DIGEST_HEX; i++) {
            if (!ngx_strchr("0123456789abcdef", hex[i])) {
                return "a pin's digest is not 64 hex digits";
            }
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_agentgov_state_pin_restore(ngx_http_agentgov_store_t *s, json_t *e,
    int64_t now)
{
    json_t                   *changed;
    ngx_uint_t                created;
    ag_str_t                  tool, name;
    ngx_http_agentgov_pin_t  *n;

    tool.p = json_string_value(json_object_get(e, "tool"));
    tool.len = ngx_strlen(tool.p);
    name.p = json_string_value(json_object_get(e, "name"));
    name.len = json_string_length(json_object_get(e, "name"));

    n = ngx_http_agentgov_pin_obtain(s, tool, name, now, &created);
    if (n == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(n->pinned, json_string_value(json_object_get(e, "sha256")),
               AG_MCP_DIGEST_HEX);

    changed = json_object_get(e, "changed");
    n->changed = json_is_string(changed);

    if (n->changed) {
        ngx_memcpy(n->seen, json_string_value(changed), AG_MCP_DIGEST_HEX);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_agentgov_state_restore(ngx_http_agentgov_store_t *s, json_t *root,
    int64_t now, ngx_log_t *log, ngx_str_t *file)
{
    size_t                          i, n, strs, skipped;
    json_t                         *v, *tasks, *susp, *e, *pins;
    uint32_t                        hash;
    ag_task_t                      *tv, *t;
    const char                     *key, *err, *name;
    ngx_int_t                       depth, maxdepth;
    ngx_http_agentgov_sh_t         *sh;
    ngx_http_agentgov_agent_t      *an;
    ngx_http_agentgov_task_node_t  *rec, *parent;

    sh = s->sh;
    tv = NULL;
    err = NULL;
    skipped = 0;

    if (!json_is_object(root)) {
        err = "not an object";
        goto malformed;
    }

    json_object_foreach(root, key, v) {
        if (ngx_strcmp(key, "version") != 0 && ngx_strcmp(key, "tasks") != 0
            && ngx_strcmp(key, "suspended") != 0
            && ngx_strcmp(key, "stopped") != 0
            && ngx_strcmp(key, "pins") != 0)
        {
            err = ngx_http_agentgov_state_err("unknown key", key);
            goto malformed;
        }
    }

    v = json_object_get(root, "version");
    if (!json_is_integer(v)
        || json_integer_value(v) != NGX_HTTP_AGENTGOV_STATE_VERSION)
    {
        err = "\"version\" is not 1";
        goto malformed;
    }

    v = json_object_get(root, "stopped");
    tasks = json_object_get(root, "tasks");
    susp = json_object_get(root, "suspended");

    if (!json_is_boolean(v)) {
        err = "\"stopped\" is not true or false";
        goto malformed;
    }

    if (!json_is_array(tasks) || !json_is_array(susp)) {
        err = "\"tasks\" or \"suspended\" is not an array";
        goto malformed;
    }

    /* MCP pins (absent from files of earlier versions) */
    pins = json_object_get(root, "pins");

    if (pins && !json_is_array(pins)) {
        err = "\"pins\" is not an array";
        goto malformed;
    }

    json_array_foreach(pins, i, e) {
        err = ngx_http_agentgov_state_pin(e);
        if (err) {
            goto malformed;
        }
    }

    /* everything is checked before anything is restored */

    json_array_foreach(susp, i, e) {
        if (!json_is_string(e) || json_string_length(e) == 0
            || json_string_length(e) > NGX_HTTP_AGENTGOV_NAME_MAX)
        {
            err = "a suspended agent is not a name";
            goto malformed;
        }
    }

    n = json_array_size(tasks);
    maxdepth = 0;

    if (n) {
        tv = ngx_alloc(n * sizeof(ag_task_t), log);
        if (tv == NULL) {
            return NGX_ERROR;
        }
    }

    json_array_foreach(tasks, i, e) {
        err = ngx_http_agentgov_state_task(e, &tv[i]);
        if (err) {
            goto malformed;
        }

        if (tv[i].depth > maxdepth) {
            maxdepth = tv[i].depth;
        }
    }

    sh->stopped = json_is_true(v) ? 1 : 0;

    json_array_foreach(susp, i, e) {
        name = json_string_value(e);
        hash = ngx_http_agentgov_hash(name, json_string_length(e));

        an = ngx_http_agentgov_agent_lookup(sh, hash, (u_char *) name,
                                            json_string_length(e));
        if (an) {
            continue;
        }

        an = ngx_http_agentgov_agent_create(s, hash, (u_char *) name,
                                            json_string_length(e), now, 1);
        if (an == NULL) {
            goto full;
        }

        an->suspended = 1;
        sh->suspended++;
        sh->susp_bytes += ngx_http_agentgov_name_size(an->len);
    }

    /* parents before children, so that every child finds its parent */

    for (depth = 0; depth <= maxdepth; depth++) {
        for (i = 0; i < n; i++) {
            t = &tv[i];

            if (t->depth != depth) {
                continue;
            }

            hash = ngx_http_agentgov_hash(t->id.p, t->id.len);

            if (ngx_http_agentgov_task_lookup(sh, hash, (u_char *) t->id.p,
                                              t->id.len))
            {
                err = "a task id appears twice";
                goto malformed;
            }

            hash = ngx_http_agentgov_hash(t->agent.p, t->agent.len);
            an = ngx_http_agentgov_agent_lookup(sh, hash,
                                                (u_char *) t->agent.p,
                                                t->agent.len);

            /* fail closed: whatever ended a task must stay in force */

            if (t->expires <= now || sh->stopped || (an && an->suspended)) {
                skipped++;
                continue;
            }

            parent = NULL;

            if (t->parent.len) {
                parent = ngx_http_agentgov_task_lookup(sh,
                             ngx_http_agentgov_hash(t->parent.p,
                                                    t->parent.len),
                             (u_char *) t->parent.p, t->parent.len);

                if (parent == NULL) {
                    skipped++;
                    continue;
                }
            }

            strs = ngx_http_agentgov_task_strs(t);

            rec = ngx_http_agentgov_task_create(s, t, strs, now);
            if (rec == NULL) {
                goto full;
            }

            if (parent && rec->d.expires > parent->d.expires) {
                rec->d.expires = parent->d.expires;
                rec->exp.node.key = (ngx_rbtree_key_t) parent->d.expires;
            }

            if (an == NULL) {
                an = ngx_http_agentgov_agent_create(s, hash,
                                                    (u_char *) t->agent.p,
                                                    t->agent.len, now, 0);
                if (an == NULL) {
                    ngx_slab_free_locked(s->shpool, rec);
                    goto full;
                }
            }

            ngx_http_agentgov_task_link(s, rec, parent, an);
        }
    }

    json_array_foreach(pins, i, e) {
        if (ngx_http_agentgov_state_pin_restore(s, e, now) != NGX_OK) {
            goto full;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "agentgov_state \"%V\": restored %ui live tasks, %ui "
                  "suspended agents%s, %ui MCP pins; %uz tasks that expired "
                  "(or whose parent did) were left out",
                  file, sh->live, sh->suspended,
                  sh->stopped ? ", all agents stopped" : "", sh->npins,
                  skipped);

    if (tv) {
        ngx_free(tv);
    }

    return NGX_OK;

malformed:

    ngx_log_error(NGX_LOG_EMERG, log, 0,
                  "agentgov_state \"%V\" is malformed: %s; fix or remove it "
                  "(removing it lifts every suspension)", file, err);

    if (tv) {
        ngx_free(tv);
    }

    return NGX_ERROR;

full:

    ngx_log_error(NGX_LOG_EMERG, log, 0,
                  "agentgov_zone \"%V\" is too small for the state in "
                  "\"%V\"", &s->shm_zone->shm.name, file);

    if (tv) {
        ngx_free(tv);
    }

    return NGX_ERROR;
}


/* An error message naming a key; loading is single-threaded (master). */

static const char *
ngx_http_agentgov_state_err(const char *what, const char *key)
{
    static u_char  buf[128];

    ngx_snprintf(buf, sizeof(buf) - 1, "%s \"%s\"%Z", what, key);
    buf[sizeof(buf) - 1] = '\0';

    return (const char *) buf;
}


/* One task of the file into t (strings borrowed from v), or why not. */

static const char *
ngx_http_agentgov_state_task(json_t *v, ag_task_t *t)
{
    size_t       k;
    json_t      *e;
    ngx_uint_t   i, found;
    ag_str_t    *sv;
    const char  *key;
    int64_t     *iv;

    static const char  *ints[] = {
        "depth", "granted", "expires", "calls", "bucket_mtok", "bucket_ms"
    };

    int64_t  depth;

    if (!json_is_object(v)) {
        return "a task is not an object";
    }

    ngx_memzero(t, sizeof(ag_task_t));

    json_object_foreach(v, key, e) {
        found = 0;

        for (i = 0; i < NGX_HTTP_AGENTGOV_NSTR; i++) {
            if (ngx_strcmp(key, ngx_http_agentgov_str_key[i]) == 0) {
                found = 1;
            }
        }

        for (k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
            if (ngx_strcmp(key, ints[k]) == 0) {
                found = 1;
            }
        }

        if (!found) {
            return ngx_http_agentgov_state_err("a task has an unknown key",
                                               key);
        }
    }

    for (i = 0; i < NGX_HTTP_AGENTGOV_NSTR; i++) {
        e = json_object_get(v, ngx_http_agentgov_str_key[i]);

        if (!json_is_string(e)) {
            return ngx_http_agentgov_state_err("a task lacks the string",
                                               ngx_http_agentgov_str_key[i]);
        }

        sv = ngx_http_agentgov_str(t, i);
        sv->p = json_string_value(e);
        sv->len = json_string_length(e);
    }

    for (k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
        e = json_object_get(v, ints[k]);

        if (!json_is_integer(e)) {
            return ngx_http_agentgov_state_err("a task lacks the integer",
                                               ints[k]);
        }

        switch (k) {
        case 0:
            iv = &depth;
            break;
        case 1:
            iv = &t->granted;
            break;
        case 2:
            iv = &t->expires;
            break;
        case 3:
            iv = &t->calls;
            break;
        case 4:
            iv = &t->bucket_mtok;
            break;
        default:
            iv = &t->bucket_ms;
            break;
        }

        *iv = json_integer_value(e);
    }

    if (depth < 0 || depth > NGX_HTTP_AGENTGOV_DEPTH_MAX) {
        return "a task's depth is out of range";
    }

    t->depth = (int) depth;
    t->state = AG_TASK_LIVE;

    if (t->expires <= 0 || t->granted < 0 || t->calls < 0) {
        return "a task's times are out of range";
    }

    if (ngx_http_agentgov_task_strs(t) == 0) {
        return "a task's strings are out of bounds, or its depth and "
               "parent disagree";
    }

    return NULL;
}
