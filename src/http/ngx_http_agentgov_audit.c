/*
 * The audit writer (SPEC section 8): agentgov_audit_log, the records of
 * calls, their results and every other decision, in one HMAC chain across
 * all workers.
 *
 * Order: a record's body is built outside the lock; sequence number, prev
 * and HMAC are taken under the store's lock (ngx_http_agentgov_store_audit)
 * and the lines go out in one write() on the O_APPEND file there too, so
 * that file order is seq order whichever worker wrote.
 *
 * Group commit: a call's record must be in the file before the call is
 * forwarded, its result record need not. Result records wait in the worker
 * and go out with the worker's next record in the same write(), or after
 * NGX_HTTP_AGENTGOV_QUEUE_WAIT ms when no record comes, so that a worker
 * pays one lock and one write() per call rather than two.
 *
 * Rotation: nginx -s reopen makes every process open the file anew, each at
 * its own moment. Before each write the writer compares its descriptor with
 * the file the last record went to; a worker that finds the chain moved on
 * to another file opens the path itself, so no record lands in the rotated
 * file after one landed in the new one. The same check notices a removed
 * file and creates it again (or fails, under fail=closed refusing calls).
 *
 * Checkpoints: every NGX_HTTP_AGENTGOV_CP_RECORDS records, and at least every
 * minute while records flow, one worker claims a checkpoint under the lock
 * and signs it outside the lock (asymmetric crypto never under it); the
 * checkpoint record then names the record it signs by seq and hash.
 */

#include <sys/stat.h>
#include <time.h>

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"
#include "ag_audit.h"


#define NGX_HTTP_AGENTGOV_CP_RECORDS    1000
#define NGX_HTTP_AGENTGOV_CP_SECONDS    60
#define NGX_HTTP_AGENTGOV_CP_TICK       5000      /* ms */

/* queued result records beyond this are written at once, and none waits
   longer than this (ms) for the next record to go out with */
#define NGX_HTTP_AGENTGOV_QUEUE_MAX     (256 * 1024)
#define NGX_HTTP_AGENTGOV_QUEUE_WAIT    10


/* one queued record: this header, then its body */
typedef struct {
    int64_t                          ts_us;
    size_t                           len;
} ngx_http_agentgov_audit_entry_t;

/* a call waiting for its record to be written (audit_call_later) */
typedef struct {
    ngx_queue_t                      queue;
    ngx_http_request_t              *r;
    ngx_http_agentgov_ctx_t         *ctx;
} ngx_http_agentgov_audit_wait_t;


/* what the writer does under the lock */
typedef struct {
    ngx_http_agentgov_audit_conf_t  *conf;
    ngx_log_t                       *log;
    ag_buf_t                        *queue;       /* entries */
    ngx_uint_t                       count;
    ngx_uint_t                       checkpoint;  /* the last entry is one */

    ngx_uint_t                       cp_due;      /* out: sign one */
    uint64_t                         cp_seq;
    u_char                           cp_hash[AG_AUDIT_HEX];
} ngx_http_agentgov_audit_job_t;


static ngx_int_t ngx_http_agentgov_audit_flush(
    ngx_http_agentgov_main_conf_t *amcf, ngx_log_t *log,
    const ngx_http_agentgov_count_t *count, ngx_uint_t master);
static ngx_int_t ngx_http_agentgov_audit_locked(void *data,
    ngx_http_agentgov_audit_head_t *head);
static ngx_int_t ngx_http_agentgov_audit_head(
    ngx_http_agentgov_audit_job_t *job, ngx_http_agentgov_audit_head_t *head,
    ag_buf_t *lines);
static ngx_int_t ngx_http_agentgov_audit_file(
    ngx_http_agentgov_audit_job_t *job, ngx_http_agentgov_audit_head_t *head,
    struct stat *st);
static void ngx_http_agentgov_audit_failed(ngx_http_agentgov_audit_job_t *job,
    ngx_http_agentgov_audit_head_t *head, ngx_err_t err, const char *what);
static void ngx_http_agentgov_audit_sign(
    ngx_http_agentgov_main_conf_t *amcf, ngx_log_t *log, uint64_t seq,
    u_char *hash, ngx_uint_t master);
static void ngx_http_agentgov_audit_queue(const ag_buf_t *body);
static ngx_int_t ngx_http_agentgov_audit_record(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref,
    ngx_http_agentgov_count_t *cnt);
static void ngx_http_agentgov_audit_batch(ngx_event_t *ev);
static void ngx_http_agentgov_audit_unwait(void *data);
static void ngx_http_agentgov_audit_flush_handler(ngx_event_t *ev);
static void ngx_http_agentgov_audit_tick(ngx_event_t *ev);
static void ngx_http_agentgov_audit_cleanup(void *data);
static int64_t ngx_http_agentgov_audit_now_us(void);


/* per process: the queue and the buffers lines are sealed into */
static ag_buf_t      ngx_http_agentgov_audit_q;
static ngx_uint_t    ngx_http_agentgov_audit_nq;
static ag_buf_t      ngx_http_agentgov_audit_lines;
static ag_buf_t      ngx_http_agentgov_audit_body;
static ngx_event_t   ngx_http_agentgov_audit_flush_ev;
static ngx_event_t   ngx_http_agentgov_audit_batch_ev;

/* decisions to count with the next write (one more for its own) */
#define NGX_HTTP_AGENTGOV_COUNTS  256
static ngx_http_agentgov_count_t  ngx_http_agentgov_audit_counts[
                                      NGX_HTTP_AGENTGOV_COUNTS + 1];
static ngx_uint_t    ngx_http_agentgov_audit_ncounts;
static ngx_queue_t   ngx_http_agentgov_audit_waiting;
static ngx_event_t   ngx_http_agentgov_audit_tick_ev;
static ngx_connection_t  ngx_http_agentgov_audit_dummy;

static ngx_http_agentgov_main_conf_t  *ngx_http_agentgov_audit_amcf;


/* --- configuration ---------------------------------------------------------- */

/* agentgov_audit_log FILE key=KEYFILE [fail=closed|open] */

char *
ngx_http_agentgov_audit_log_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_agentgov_main_conf_t *amcf = conf;

    char                            err[512];
    ngx_str_t                      *value, key;
    ngx_uint_t                      i;
    struct stat                     st;
    ngx_pool_cleanup_t             *cln;
    ngx_http_agentgov_audit_conf_t *ac;

    if (amcf->audit) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ac = ngx_pcalloc(cf->pool, sizeof(ngx_http_agentgov_audit_conf_t));
    if (ac == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&key);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            key.data = value[i].data + 4;
            key.len = value[i].len - 4;
            continue;
        }

        if (ngx_strcmp(value[i].data, "fail=closed") == 0) {
            ac->fail_open = 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "fail=open") == 0) {
            ac->fail_open = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": expected key=FILE, "
                           "fail=closed or fail=open", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"agentgov_audit_log\" needs key=FILE: the HMAC "
                           "key of the chain");
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &key, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* whoever reads the key can rewrite the chain: keep it to its owner */
    if (stat((const char *) key.data, &st) == 0
        && (st.st_mode & (S_IRWXG|S_IRWXO)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audit key \"%V\" is accessible to group or "
                           "others (mode %03o): chmod 600 it", &key,
                           (unsigned) (st.st_mode & 0777));
        return NGX_CONF_ERROR;
    }

    ac->key = ag_audit_key_load((const char *) key.data, err, sizeof(err));
    if (ac->key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ag_audit_key_free(ac->key);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_agentgov_audit_cleanup;
    cln->data = ac->key;

    ac->path = value[1];

    /* opened by nginx with the other logs, and reopened with them */
    ac->file = ngx_conf_open_file(cf->cycle, &ac->path);
    if (ac->file == NULL) {
        return NGX_CONF_ERROR;
    }

    ac->path = ac->file->name;

    amcf->audit = ac;

    return NGX_CONF_OK;
}


static void
ngx_http_agentgov_audit_cleanup(void *data)
{
    ag_audit_key_free(data);
}


char *
ngx_http_agentgov_audit_check_conf(ngx_conf_t *cf,
    ngx_http_agentgov_main_conf_t *amcf)
{
    if (amcf->audit == NULL) {
        return NGX_CONF_OK;
    }

    if (amcf->policy == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"agentgov_audit_log\" "
                           "requires \"agentgov_policy\"");
        return NGX_CONF_ERROR;
    }

    if (amcf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"agentgov_audit_log\" "
                           "requires \"agentgov_zone\": the chain's head is "
                           "shared there");
        return NGX_CONF_ERROR;
    }

    if (amcf->signing_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"agentgov_audit_log\" "
                           "requires \"agentgov_signing_key\": it signs the "
                           "chain's checkpoints");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* --- start, reload, workers ------------------------------------------------- */

/*
 * In the master, once a configuration is loaded (start and reload): the
 * chain's head is read from the end of the file when the zone is new, a
 * restart record follows a line a crash cut short, and a policy record
 * names the policy now in force.
 */

ngx_int_t
ngx_http_agentgov_audit_init_module(ngx_cycle_t *cycle)
{
    char                             extra[512];
    ag_audit_rec_t                   rec;
    ngx_http_agentgov_main_conf_t   *amcf;

    if (ngx_test_config || ngx_process == NGX_PROCESS_SIGNALLER) {
        return NGX_OK;
    }

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_agentgov_module);

    if (amcf == NULL || amcf->audit == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&rec, sizeof(rec));
    rec.event = "policy";
    rec.latency_us = -1;
    rec.reason.p = (ngx_process == NGX_PROCESS_MASTER
                    && ngx_cycle && ngx_cycle->conf_ctx) ? "reload" : "start";
    rec.reason.len = ngx_strlen(rec.reason.p);

    ngx_snprintf((u_char *) extra, sizeof(extra),
                 "\"policy\":{\"file\":\"%V\",\"sha256\":\"%s\"}%Z",
                 &amcf->policy_file, ag_policy_sha256(amcf->policy));
    rec.extra = extra;

    ag_buf_reset(&ngx_http_agentgov_audit_body);
    ag_audit_body(&rec, &ngx_http_agentgov_audit_body);
    ngx_http_agentgov_audit_queue(&ngx_http_agentgov_audit_body);

    if (ngx_http_agentgov_audit_flush(amcf, cycle->log, NULL, 1) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "agentgov: the policy record was not written to the "
                      "audit log");
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_agentgov_audit_init_process(ngx_cycle_t *cycle)
{
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_agentgov_module);

    if (amcf == NULL || amcf->audit == NULL) {
        return NGX_OK;
    }

    ngx_http_agentgov_audit_amcf = amcf;

    ngx_http_agentgov_audit_dummy.fd = (ngx_socket_t) -1;

    ngx_queue_init(&ngx_http_agentgov_audit_waiting);
    ngx_http_agentgov_audit_batch_ev.handler = ngx_http_agentgov_audit_batch;
    ngx_http_agentgov_audit_batch_ev.data = &ngx_http_agentgov_audit_dummy;
    ngx_http_agentgov_audit_batch_ev.log = cycle->log;

    ngx_http_agentgov_audit_flush_ev.handler =
                                         ngx_http_agentgov_audit_flush_handler;
    ngx_http_agentgov_audit_flush_ev.data = &ngx_http_agentgov_audit_dummy;
    ngx_http_agentgov_audit_flush_ev.log = cycle->log;

    ngx_http_agentgov_audit_tick_ev.handler = ngx_http_agentgov_audit_tick;
    ngx_http_agentgov_audit_tick_ev.data = &ngx_http_agentgov_audit_dummy;
    ngx_http_agentgov_audit_tick_ev.log = cycle->log;
    ngx_http_agentgov_audit_tick_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_agentgov_audit_tick_ev,
                  NGX_HTTP_AGENTGOV_CP_TICK);

    return NGX_OK;
}


void
ngx_http_agentgov_audit_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_agentgov_audit_amcf && ngx_http_agentgov_audit_nq) {
        (void) ngx_http_agentgov_audit_flush(ngx_http_agentgov_audit_amcf,
                                             cycle->log, NULL, 0);
    }

    ag_buf_free(&ngx_http_agentgov_audit_q);
    ag_buf_free(&ngx_http_agentgov_audit_lines);
    ag_buf_free(&ngx_http_agentgov_audit_body);
    ngx_http_agentgov_audit_nq = 0;
}


static void
ngx_http_agentgov_audit_flush_handler(ngx_event_t *ev)
{
    if (ngx_http_agentgov_audit_nq) {
        (void) ngx_http_agentgov_audit_flush(ngx_http_agentgov_audit_amcf,
                                             ev->log, NULL, 0);
    }
}


/* the minute's checkpoint when records flow slowly */

static void
ngx_http_agentgov_audit_tick(ngx_event_t *ev)
{
    ngx_http_agentgov_audit_job_t   job;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_agentgov_audit_amcf;

    ngx_memzero(&job, sizeof(job));
    job.conf = amcf->audit;
    job.log = ev->log;
    job.queue = &ngx_http_agentgov_audit_q;
    job.count = 0;

    (void) ngx_http_agentgov_store_audit(amcf->zone->data,
                                         ngx_http_agentgov_audit_locked, &job,
                                         NULL, 0, 0);
    if (job.cp_due) {
        ngx_http_agentgov_audit_sign(amcf, ev->log, job.cp_seq,
                                           job.cp_hash, 0);
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_AGENTGOV_CP_TICK);
    }
}


/* --- writing ------------------------------------------------------------------ */

static void
ngx_http_agentgov_audit_queue(const ag_buf_t *body)
{
    ngx_http_agentgov_audit_entry_t  e;

    if (body->failed) {
        ngx_http_agentgov_audit_q.failed = 1;
        return;
    }

    e.ts_us = ngx_http_agentgov_audit_now_us();
    e.len = body->len;

    ag_buf_add(&ngx_http_agentgov_audit_q, &e, sizeof(e));
    ag_buf_add(&ngx_http_agentgov_audit_q, body->p, body->len);
    ngx_http_agentgov_audit_nq++;
}


/*
 * Write every queued record. NGX_OK, or NGX_ERROR when they could not be
 * written (the queue is dropped either way: they are counted as failures).
 */

static ngx_int_t
ngx_http_agentgov_audit_flush(ngx_http_agentgov_main_conf_t *amcf,
    ngx_log_t *log, const ngx_http_agentgov_count_t *count, ngx_uint_t master)
{
    ngx_int_t                       rc;
    ngx_uint_t                      nc;
    ngx_http_agentgov_audit_job_t   job;

    ngx_memzero(&job, sizeof(job));
    job.conf = amcf->audit;
    job.log = log;
    job.queue = &ngx_http_agentgov_audit_q;
    job.count = ngx_http_agentgov_audit_nq;

    /* the decisions counted since the last write go with this one */
    nc = ngx_http_agentgov_audit_ncounts;

    if (count) {
        ngx_http_agentgov_audit_counts[nc++] = *count;
    }

    rc = ngx_http_agentgov_store_audit(amcf->zone->data,
                                       ngx_http_agentgov_audit_locked, &job,
                                       ngx_http_agentgov_audit_counts, nc,
                                       master);
    ngx_http_agentgov_audit_ncounts = 0;
    if (rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "agentgov: the zone stays locked: audit records lost");
    }

    ag_buf_reset(&ngx_http_agentgov_audit_q);
    ngx_http_agentgov_audit_nq = 0;

    if (job.cp_due) {
        ngx_http_agentgov_audit_sign(amcf, log, job.cp_seq, job.cp_hash,
                                           master);
    }

    return rc == NGX_OK ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_agentgov_audit_sign(ngx_http_agentgov_main_conf_t *amcf,
    ngx_log_t *log, uint64_t seq, u_char *hash, ngx_uint_t master)
{
    char                            err[256];
    ngx_int_t                       rc;
    ag_buf_t                       *body;
    ngx_http_agentgov_audit_job_t   job;

    body = &ngx_http_agentgov_audit_body;
    ag_buf_reset(body);

    if (ag_audit_checkpoint_body(amcf->signing_key, amcf->signing_kid,
                                 (const char *) amcf->issuer.data, seq,
                                 (const char *) hash, ngx_time(), body, err,
                                 sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "agentgov: cannot sign the audit checkpoint of seq "
                      "%uL: %s", seq, err);
        return;
    }

    /* alone, so that the writer knows which line to keep for the API */

    if (ngx_http_agentgov_audit_nq) {
        (void) ngx_http_agentgov_audit_flush(amcf, log, NULL, master);
    }

    ngx_http_agentgov_audit_queue(body);

    ngx_memzero(&job, sizeof(job));
    job.conf = amcf->audit;
    job.log = log;
    job.queue = &ngx_http_agentgov_audit_q;
    job.count = ngx_http_agentgov_audit_nq;
    job.checkpoint = 1;

    rc = ngx_http_agentgov_store_audit(amcf->zone->data,
                                       ngx_http_agentgov_audit_locked, &job,
                                       NULL, 0, master);

    ag_buf_reset(&ngx_http_agentgov_audit_q);
    ngx_http_agentgov_audit_nq = 0;

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "agentgov: the audit checkpoint of seq %uL was not "
                      "written", seq);
    }
}


/*
 * Under the store's lock: seal the queued records after the chain's head,
 * write them in one write(), move the head. When the zone does not know the
 * head yet (it is new: start or restart), it is read from the end of the
 * file first, and a restart record follows a line a crash cut short.
 */

static ngx_int_t
ngx_http_agentgov_audit_locked(void *data,
    ngx_http_agentgov_audit_head_t *head)
{
    ngx_http_agentgov_audit_job_t *job = data;

    char                              prev[AG_AUDIT_HEX], hash[AG_AUDIT_HEX];
    size_t                            off, cp_off;
    ssize_t                           n;
    uint64_t                          seq;
    ngx_fd_t                          fd;
    ngx_err_t                         e;
    ngx_uint_t                        i, restarted;
    struct stat                       st;
    ag_buf_t                         *lines;
    ngx_http_agentgov_audit_entry_t   entry;

    lines = &ngx_http_agentgov_audit_lines;
    ag_buf_reset(lines);

    restarted = 0;

    if (!head->ready) {
        if (ngx_http_agentgov_audit_head(job, head, lines) != NGX_OK) {
            return NGX_ERROR;
        }

        restarted = (lines->len > 0);
    }

    if (job->count == 0 && !restarted) {
        goto checkpoint;
    }

    if (head->broken) {
        ngx_http_agentgov_audit_failed(job, head, 0, "a partial record "
                                       "could not be removed; restart nginx");
        return NGX_ERROR;
    }

    fd = job->conf->file->fd;

    if (fstat(fd, &st) == -1) {
        ngx_http_agentgov_audit_failed(job, head, ngx_errno, "fstat()");
        goto failed;
    }

    if (st.st_nlink == 0
        || (head->ino && (st.st_ino != head->ino || st.st_dev != head->dev)))
    {
        if (ngx_http_agentgov_audit_file(job, head, &st) != NGX_OK) {
            goto failed;
        }

        fd = job->conf->file->fd;
    }

    seq = head->seq + restarted;
    ngx_memcpy(prev, restarted ? head->restart_hash : head->hash,
               AG_AUDIT_HEX);

    off = 0;
    cp_off = 0;

    for (i = 0; i < job->count; i++) {
        if (off + sizeof(entry) > job->queue->len) {
            break;
        }

        ngx_memcpy(&entry, job->queue->p + off, sizeof(entry));
        off += sizeof(entry);

        cp_off = lines->len;

        if (ag_audit_seal(job->conf->key, seq + 1, entry.ts_us,
                          job->queue->p + off, entry.len, prev, lines, hash)
            != 0)
        {
            break;
        }

        off += entry.len;
        seq++;
        ngx_memcpy(prev, hash, AG_AUDIT_HEX);
    }

    if (i < job->count || job->queue->failed || lines->failed) {
        ngx_http_agentgov_audit_failed(job, head, 0, "out of memory");
        goto failed;
    }

    do {
        n = write(fd, lines->p, lines->len);
    } while (n == -1 && ngx_errno == NGX_EINTR);

    if (n != (ssize_t) lines->len) {
        e = (n == -1) ? ngx_errno : NGX_ENOSPC;

        /* a partial line would break the chain for every later record */
        if (n > 0 && ftruncate(fd, st.st_size) == -1) {
            head->broken = 1;
            ngx_log_error(NGX_LOG_ALERT, job->log, ngx_errno,
                          "agentgov: audit log \"%V\": a partial record "
                          "could not be removed: nothing more is written "
                          "until nginx restarts", &job->conf->path);
        }

        ngx_http_agentgov_audit_failed(job, head, e, "write()");
        goto failed;
    }

    head->seq = seq;
    ngx_memcpy(head->hash, prev, AG_AUDIT_HEX);
    head->dev = st.st_dev;
    head->ino = st.st_ino;
    head->records += job->count + restarted;
    head->writes++;

    if (head->failing) {
        head->failing = 0;
        ngx_log_error(NGX_LOG_NOTICE, job->log, 0,
                      "agentgov: audit log \"%V\" is written again",
                      &job->conf->path);
    }

    if (job->checkpoint) {
        /* the last line, without its '\n', for the checkpoint API */
        n = lines->len - cp_off - 1;

        if (n > 0 && (size_t) n <= NGX_HTTP_AGENTGOV_CHECKPOINT_MAX) {
            ngx_memcpy(head->cp_line, lines->p + cp_off, n);
            head->cp_len = n;
        }

        head->checkpoints++;
        return NGX_OK;
    }

checkpoint:

    if (head->seq > head->cp_seq
        && (head->seq - head->cp_seq >= NGX_HTTP_AGENTGOV_CP_RECORDS
            || ngx_time() - head->cp_time >= NGX_HTTP_AGENTGOV_CP_SECONDS))
    {
        head->cp_seq = head->seq;
        head->cp_time = ngx_time();

        job->cp_due = 1;
        job->cp_seq = head->seq;
        ngx_memcpy(job->cp_hash, head->hash, AG_AUDIT_HEX);
    }

    return NGX_OK;

failed:

    if (restarted) {
        /* the restart record is not in the file: read the end again */
        head->ready = 0;
    }

    return NGX_ERROR;
}


/*
 * The chain's head from the end of the file. When a crash left a partial
 * line, the restart record that names it is sealed into `lines` (after a
 * '\n' that ends the partial line, if needed); its hash is kept in
 * head->restart_hash and counts only once the caller has written it.
 */

static ngx_int_t
ngx_http_agentgov_audit_head(ngx_http_agentgov_audit_job_t *job,
    ngx_http_agentgov_audit_head_t *head, ag_buf_t *lines)
{
    int               rc;
    char              err[256], hash[AG_AUDIT_HEX];
    ngx_fd_t          fd;
    ngx_err_t         e;
    ag_buf_t          restart;
    ag_audit_tail_t   tail;

    /* the log's own descriptor is write-only */
    fd = ngx_open_file(job->conf->path.data, NGX_FILE_RDONLY,
                       NGX_FILE_CREATE_OR_OPEN, NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_http_agentgov_audit_failed(job, head, ngx_errno,
                                       "open() to read its end");
        return NGX_ERROR;
    }

    rc = ag_audit_tail(fd, &tail, err, sizeof(err));
    e = ngx_errno;

    (void) ngx_close_file(fd);

    if (rc != 0) {
        ngx_http_agentgov_audit_failed(job, head, e, err);
        return NGX_ERROR;
    }

    head->ready = 1;
    head->seq = tail.found ? tail.seq : 0;

    if (tail.found) {
        ngx_memcpy(head->hash, tail.hash, AG_AUDIT_HEX);

    } else {
        ngx_memset(head->hash, '0', AG_AUDIT_HEX);
    }

    head->cp_seq = head->seq;
    head->cp_time = ngx_time();

    if (tail.size > 0 && !tail.found) {
        ngx_log_error(NGX_LOG_ALERT, job->log, 0,
                      "agentgov: audit log \"%V\" holds no whole record: "
                      "a new chain starts after its %O bytes",
                      &job->conf->path, tail.size);
    }

    if (!tail.partial) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ALERT, job->log, 0,
                  "agentgov: audit log \"%V\": the last record was cut "
                  "short (%O bytes after seq %uL); the chain goes on with "
                  "a restart record", &job->conf->path, tail.partial_len,
                  head->seq);

    if (tail.partial_newline) {
        ag_buf_add(lines, "\n", 1);
    }

    ngx_memzero(&restart, sizeof(ag_buf_t));
    ag_audit_restart_body(&tail, &restart);

    if (restart.failed
        || ag_audit_seal(job->conf->key, head->seq + 1,
                         ngx_http_agentgov_audit_now_us(), restart.p,
                         restart.len, (const char *) head->hash, lines, hash)
           != 0)
    {
        ag_buf_free(&restart);
        head->ready = 0;
        ngx_http_agentgov_audit_failed(job, head, 0, "cannot seal a record");
        return NGX_ERROR;
    }

    ag_buf_free(&restart);
    ngx_memcpy(head->restart_hash, hash, AG_AUDIT_HEX);

    return NGX_OK;
}


/*
 * The descriptor does not reach the file the chain went on in: it was
 * removed, or rotated away while another process already writes to the new
 * one. If the path is ours after all (this process reopened first), go on;
 * otherwise open the path now, as "nginx -s reopen" will.
 */

static ngx_int_t
ngx_http_agentgov_audit_file(ngx_http_agentgov_audit_job_t *job,
    ngx_http_agentgov_audit_head_t *head, struct stat *st)
{
    ngx_fd_t      fd;
    struct stat   ps;

    if (st->st_nlink > 0
        && stat((const char *) job->conf->path.data, &ps) == 0
        && ps.st_dev == st->st_dev && ps.st_ino == st->st_ino)
    {
        return NGX_OK;
    }

    fd = ngx_open_file(job->conf->path.data, NGX_FILE_APPEND,
                       NGX_FILE_CREATE_OR_OPEN, NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_http_agentgov_audit_failed(job, head, ngx_errno,
                                       "open() after the file was moved "
                                       "or removed");
        return NGX_ERROR;
    }

    /* the same descriptor number: whatever holds it sees the new file */
    if (dup2(fd, job->conf->file->fd) == -1) {
        ngx_http_agentgov_audit_failed(job, head, ngx_errno, "dup2()");
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    (void) ngx_close_file(fd);

    if (fstat(job->conf->file->fd, st) == -1) {
        ngx_http_agentgov_audit_failed(job, head, ngx_errno, "fstat()");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_agentgov_audit_failed(ngx_http_agentgov_audit_job_t *job,
    ngx_http_agentgov_audit_head_t *head, ngx_err_t err, const char *what)
{
    time_t  now;

    head->failures += job->count ? job->count : 1;
    head->failing = 1;

    now = ngx_time();

    /* once a second across all workers */
    if (head->failure_logged == now) {
        return;
    }

    head->failure_logged = now;

    ngx_log_error(NGX_LOG_ALERT, job->log, err,
                  "agentgov: cannot write the audit log \"%V\": %s; %s",
                  &job->conf->path, what,
                  job->conf->fail_open ? "calls go on unrecorded (fail=open)"
                                       : "calls are refused (fail=closed)");
}


static int64_t
ngx_http_agentgov_audit_now_us(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}


/* --- records of requests ----------------------------------------------------- */

int64_t
ngx_http_agentgov_monotonic_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static ngx_int_t
ngx_http_agentgov_audit_code(const char *code)
{
    ngx_int_t  i;

    if (code == NULL) {
        return -1;
    }

    for (i = 0; ngx_http_agentgov_metric_codes[i]; i++) {
        if (ngx_strcmp(ngx_http_agentgov_metric_codes[i], code) == 0) {
            return i;
        }
    }

    return -1;
}


static ngx_int_t
ngx_http_agentgov_audit_decision(ngx_str_t *name)
{
    static const char  *names[] = {
        "allow", "deny", "hold", "monitor-deny", "monitor-hold", "approved",
        "denied", "expired", "cancelled", NULL
    };

    ngx_int_t  i;

    for (i = 0; names[i]; i++) {
        if (name->len == ngx_strlen(names[i])
            && ngx_strncmp(name->data, names[i], name->len) == 0)
        {
            return i;
        }
    }

    return -1;
}


#define ngx_http_agentgov_ag_str(s)                                           \
    ((ag_str_t) { (const char *) (s).data, (s).len })


/* The members every record of a call has: who, under which task, what. */

static void
ngx_http_agentgov_audit_who(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ag_audit_rec_t *rec)
{
    rec->request_id.p = (const char *) ctx->request_id;
    rec->request_id.len = sizeof(ctx->request_id);

    if (ctx->agent) {
        rec->agent.p = ctx->agent->name;
        rec->agent.len = ngx_strlen(ctx->agent->name);
        rec->owner.p = ctx->agent->owner;
        rec->owner.len = rec->owner.p ? ngx_strlen(rec->owner.p) : 0;
    }

    if (ctx->has_task) {
        rec->task = ctx->task.id;
        rec->intent = ctx->task.intent;
        rec->chain = ctx->task.chain;
    }

    if (ctx->tool) {
        rec->tool.p = ctx->tool->name;
        rec->tool.len = ngx_strlen(ctx->tool->name);
    }
}


/*
 * The record of a call's decision, before the call goes on or is refused
 * (ref: the refusal, or under monitor the would-be one; NULL when allowed).
 * The decision is counted in the metrics either way. NGX_ERROR when the
 * record could not be written and fail=closed: the caller refuses.
 */

ngx_int_t
ngx_http_agentgov_audit_call(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref)
{
    ngx_int_t                        rc;
    ngx_http_agentgov_count_t        count;
    ngx_http_agentgov_main_conf_t   *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (ngx_http_agentgov_audit_record(r, ctx, ref, &count) != NGX_OK) {
        /* no audit log: counted */
        return NGX_OK;
    }

    /* results queued before this record go out in the same write() */

    rc = ngx_http_agentgov_audit_flush(amcf, r->connection->log, &count, 0);

    if (rc == NGX_OK) {
        ctx->audited = 1;
        return NGX_OK;
    }

    return amcf->audit->fail_open ? NGX_OK : NGX_ERROR;
}


/*
 * The record of a call that goes on, written with those of every other
 * call decided in the same event loop iteration, in one write() at its end
 * (ngx_http_agentgov_audit_batch): the call waits for it, so that it still
 * leaves only once its record is in the file. NGX_AGAIN: the request
 * resumes its phases after the write, and ngx_http_agentgov_audit_resumed()
 * tells how the write went. NGX_OK: no audit log (counted).
 */

ngx_int_t
ngx_http_agentgov_audit_call_later(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_agentgov_count_t        count;
    ngx_http_agentgov_audit_wait_t  *w;
    ngx_http_agentgov_main_conf_t   *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (ngx_http_agentgov_audit_record(r, ctx, ref, &count) != NGX_OK) {
        return NGX_OK;
    }

    if (ngx_http_agentgov_audit_ncounts < NGX_HTTP_AGENTGOV_COUNTS) {
        ngx_http_agentgov_audit_counts[ngx_http_agentgov_audit_ncounts++] =
                                                                        count;
    } else {
        ngx_http_agentgov_store_count(amcf->zone->data, &count);
    }

    w = ngx_palloc(r->pool, sizeof(ngx_http_agentgov_audit_wait_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (w == NULL || cln == NULL) {
        /* the record is queued: it goes with the next write */
        return NGX_ERROR;
    }

    w->r = r;
    w->ctx = ctx;
    ngx_queue_insert_tail(&ngx_http_agentgov_audit_waiting, &w->queue);

    cln->handler = ngx_http_agentgov_audit_unwait;
    cln->data = w;

    ctx->audit_wait = 1;

    r->write_event_handler = ngx_http_core_run_phases;

    if (!ngx_http_agentgov_audit_batch_ev.posted) {
        ngx_post_event(&ngx_http_agentgov_audit_batch_ev, &ngx_posted_events);
    }

    return NGX_AGAIN;
}


/* The end of the event loop iteration: one write, then the calls go on. */

static void
ngx_http_agentgov_audit_batch(ngx_event_t *ev)
{
    ngx_int_t                        rc;
    ngx_queue_t                     *q;
    ngx_http_agentgov_audit_wait_t  *w;

    rc = ngx_http_agentgov_audit_nq
         ? ngx_http_agentgov_audit_flush(ngx_http_agentgov_audit_amcf, ev->log,
                                         NULL, 0)
         : NGX_OK;

    if (rc != NGX_OK && ngx_http_agentgov_audit_amcf->audit->fail_open) {
        rc = NGX_DECLINED;
    }

    while (!ngx_queue_empty(&ngx_http_agentgov_audit_waiting)) {
        q = ngx_queue_head(&ngx_http_agentgov_audit_waiting);
        w = ngx_queue_data(q, ngx_http_agentgov_audit_wait_t, queue);

        ngx_queue_remove(q);
        ngx_queue_init(q);

        w->ctx->audit_wait = 0;
        w->ctx->audited = (rc == NGX_OK);
        w->ctx->audit_failed = (rc == NGX_ERROR);

        ngx_post_event(w->r->connection->write, &ngx_posted_events);
    }
}


/* The request ended while it waited (the worker is shutting down). */

static void
ngx_http_agentgov_audit_unwait(void *data)
{
    ngx_http_agentgov_audit_wait_t *w = data;

    if (w->ctx->audit_wait) {
        ngx_queue_remove(&w->queue);
        w->ctx->audit_wait = 0;
    }
}


/*
 * The call record: built and queued. NGX_DECLINED without an audit log
 * (the decision is counted then); *count is the decision to count with the
 * write otherwise.
 */

static ngx_int_t
ngx_http_agentgov_audit_record(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref,
    ngx_http_agentgov_count_t *cnt)
{
    ngx_str_t                        decision, path;
    ag_audit_rec_t                   rec;
    ngx_http_agentgov_store_t       *s;
    ngx_http_agentgov_main_conf_t   *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    s = amcf->zone ? amcf->zone->data : NULL;

    if (ctx->decision_name.len) {
        decision = ctx->decision_name;

    } else if (ref) {
        decision.data = (u_char *) ref->decision;
        decision.len = ngx_strlen(ref->decision);

    } else {
        ngx_str_set(&decision, "allow");
    }

    cnt->tool.p = ctx->tool ? ctx->tool->name : NULL;
    cnt->tool.len = ctx->tool ? ngx_strlen(ctx->tool->name) : 0;
    cnt->decision = ngx_http_agentgov_audit_decision(&decision);
    cnt->code = ref ? ngx_http_agentgov_audit_code(ref->code) : -1;
    cnt->latency_us = ctx->busy_us + ngx_http_agentgov_monotonic_us()
                      - ctx->entered_us;

    if (amcf->audit == NULL) {
        if (s) {
            ngx_http_agentgov_store_count(s, cnt);
        }

        return NGX_DECLINED;
    }

    ngx_memzero(&rec, sizeof(rec));

    rec.event = "call";
    rec.latency_us = -1;

    ngx_http_agentgov_audit_who(r, ctx, &rec);

    if (ctx->call.mcp_method.len) {
        /* an MCP call is what its deciding message asks */
        rec.mcp_method = ctx->call.mcp_method;
        rec.mcp_tool = ctx->call.mcp_tool;
        rec.mcp_resource = ctx->call.mcp_resource;
        rec.mcp_prompt = ctx->call.mcp_prompt;

    } else {
        rec.method = ngx_http_agentgov_ag_str(r->method_name);
        rec.host = ngx_http_agentgov_ag_str(r->headers_in.server);

        path = ctx->path.len ? ctx->path : r->uri;

        if (ctx->secret_in_path) {
            ngx_str_set(&path, "(withheld: the path holds a secret)");
        }

        rec.path = ngx_http_agentgov_ag_str(path);
    }

    if (ctx->args_sha256[0]) {
        rec.args_sha256.p = (const char *) ctx->args_sha256;
        rec.args_sha256.len = sizeof(ctx->args_sha256);
    }

    rec.decision = ngx_http_agentgov_ag_str(decision);
    rec.rule = ngx_http_agentgov_ag_str(ctx->rule);

    if (ctx->decision.rule) {
        rec.tags = ctx->decision.rule->tags;
        rec.ntags = ctx->decision.rule->ntags;
    }

    if (ctx->approval.len) {
        rec.approval_id.p = (const char *) ctx->approval.data;
        rec.approval_id.len = ctx->approval.len;
    }

    if (ctx->stripped) {
        rec.stripped = ctx->stripped->elts;
        rec.nstripped = ctx->stripped->nelts;
    }

    rec.findings = ctx->findings;
    rec.nfindings = ctx->nfindings;

    if (ctx->cred_jti.len) {
        rec.cred_type = "jwt";
        rec.cred_kid = amcf->signing_kid;
        rec.cred_jti.p = (const char *) ctx->cred_jti.data;
        rec.cred_jti.len = ctx->cred_jti.len;
        rec.cred_exp = ctx->cred_exp;

    } else if (ctx->injected) {
        rec.cred_type = "secret";
    }

    if (ref) {
        rec.reason = ngx_http_agentgov_ag_str(ref->message);
        rec.error.p = ref->code;
        rec.error.len = ngx_strlen(ref->code);

        /* what the agent was answered (a refused MCP call: the status of
           its JSON-RPC answer); a monitored call, not decided yet, goes on
           and has a result */
        if (ctx->decision_name.len == 0 || ctx->decided) {
            rec.status = (int) ngx_http_agentgov_mcp_status(ctx, ref);
        }
    }

    ag_buf_reset(&ngx_http_agentgov_audit_body);
    ag_audit_body(&rec, &ngx_http_agentgov_audit_body);
    ngx_http_agentgov_audit_queue(&ngx_http_agentgov_audit_body);

    return NGX_OK;
}


/* The log phase: the result of a call that went on to its tool. */

ngx_int_t
ngx_http_agentgov_audit_log_handler(ngx_http_request_t *r)
{
    ag_audit_rec_t                  rec;
    ngx_http_agentgov_ctx_t        *ctx;
    ngx_http_agentgov_main_conf_t  *amcf;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_agentgov_module);

    if (ctx == NULL || !ctx->audited || !ctx->passed) {
        return NGX_OK;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (amcf->audit == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&rec, sizeof(rec));

    rec.event = "result";
    ngx_http_agentgov_audit_who(r, ctx, &rec);
    rec.owner.len = 0;
    rec.intent.len = 0;
    rec.chain.len = 0;

    rec.status = (int) (r->err_status ? r->err_status : r->headers_out.status);
    rec.latency_us = ngx_http_agentgov_monotonic_us() - ctx->started_us;

    ag_buf_reset(&ngx_http_agentgov_audit_body);
    ag_audit_body(&rec, &ngx_http_agentgov_audit_body);
    ngx_http_agentgov_audit_queue(&ngx_http_agentgov_audit_body);

    if (ngx_http_agentgov_audit_q.len >= NGX_HTTP_AGENTGOV_QUEUE_MAX) {
        (void) ngx_http_agentgov_audit_flush(amcf, r->connection->log, NULL,
                                             0);
        return NGX_OK;
    }

    if (!ngx_http_agentgov_audit_flush_ev.timer_set) {
        ngx_add_timer(&ngx_http_agentgov_audit_flush_ev,
                      NGX_HTTP_AGENTGOV_QUEUE_WAIT);
    }

    return NGX_OK;
}


/*
 * A record of the control API (task and agent events), written at once.
 * NGX_ERROR when it could not be written and fail=closed.
 */

ngx_int_t
ngx_http_agentgov_audit_event(ngx_http_request_t *r, ag_audit_rec_t *rec)
{
    ngx_http_agentgov_ctx_t        *ctx;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (amcf->audit == NULL || amcf->zone == NULL) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_agentgov_module);

    if (ctx && rec->request_id.len == 0) {
        rec->request_id.p = (const char *) ctx->request_id;
        rec->request_id.len = sizeof(ctx->request_id);
    }

    rec->latency_us = -1;

    ag_buf_reset(&ngx_http_agentgov_audit_body);
    ag_audit_body(rec, &ngx_http_agentgov_audit_body);
    ngx_http_agentgov_audit_queue(&ngx_http_agentgov_audit_body);

    if (ngx_http_agentgov_audit_flush(amcf, r->connection->log, NULL, 0)
        == NGX_OK)
    {
        return NGX_OK;
    }

    return amcf->audit->fail_open ? NGX_OK : NGX_ERROR;
}


/*
 * An approval record: a hold's transition (approved, denied, expired,
 * cancelled), with the person who decided and why. Written by whichever
 * process saw it; refused either way, so a failure is only counted.
 */

void
ngx_http_agentgov_audit_approval(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, const char *decision, ngx_str_t *approver,
    ngx_str_t *reason)
{
    ag_audit_rec_t  rec;

    ngx_memzero(&rec, sizeof(rec));

    rec.event = "approval";
    ngx_http_agentgov_audit_who(r, ctx, &rec);

    rec.decision.p = decision;
    rec.decision.len = ngx_strlen(decision);
    rec.approval_id.p = (const char *) ctx->approval_id;
    rec.approval_id.len = AG_TASK_ID_LEN;
    rec.decided_at = ngx_time();

    if (approver) {
        rec.approver = ngx_http_agentgov_ag_str(*approver);
    }

    if (reason) {
        rec.approval_reason = ngx_http_agentgov_ag_str(*reason);
    }

    (void) ngx_http_agentgov_audit_event(r, &rec);
}
