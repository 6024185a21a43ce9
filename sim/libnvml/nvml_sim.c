/*
 * gpu-sim: a stand-in libnvidia-ml.so.1.
 *
 * Implements the NVML C API (compiled against NVIDIA's own nvml.h, fetched at build time from the
 * nvidia-nvml-dev wheel) over a JSON fixture describing a machine, so that the real nvidia-ml-py
 * (`import pynvml`) and nvidia-smi-style tools run on hosts without a GPU. Functions not
 * implemented here are simply not exported: pynvml then raises NVMLError_FunctionNotFound, exactly
 * as with an older real driver. Every exported function returns NVML_ERROR_UNINITIALIZED before
 * nvmlInit, like the real library.
 *
 * Where the fixture comes from (read again on every first nvmlInit, so edits inject faults):
 *   $GPU_SIM_FIXTURE, else /etc/gpu-sim/machine.json
 * The "kernel module": the fixture's kernel_module.state_file holds the loaded module's version
 * (written by the stand-in driver packages); missing file -> NVML_ERROR_DRIVER_NOT_LOADED, a version
 * other than this library's -> NVML_ERROR_LIB_RM_VERSION_MISMATCH ("Driver/library version
 * mismatch"). Without a kernel_module key the module is taken as loaded at the library's version.
 */
#define NVML_NO_UNVERSIONED_FUNC_DEFS
#include "nvml.h"

#include "json.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef GPU_SIM_DRIVER_VERSION
#define GPU_SIM_DRIVER_VERSION "550.127.05"
#endif
#ifndef GPU_SIM_CUDA_DRIVER_VERSION
#define GPU_SIM_CUDA_DRIVER_VERSION 12040
#endif
#define GPU_SIM_NVML_VERSION "12." GPU_SIM_DRIVER_VERSION
#define DEFAULT_FIXTURE "/etc/gpu-sim/machine.json"
#define PERSISTENCED_SOCKET "/run/nvidia-persistenced/socket"

#define MAX_GPUS 32
#define MAX_LINKS NVML_NVLINK_MAX_LINKS
#define MAX_PROCS 64
#define MAX_EVENTS 64
#define MAX_SETS 16
#define CPUSET_WORDS 16 /* 1024 CPUs */

#define FAULT_NONE 0
#define FAULT_LOST 1
#define FAULT_OFF_BUS 2

#define REMOTE_NONE 0
#define REMOTE_GPU 1
#define REMOTE_SWITCH 2

typedef struct {
    unsigned int pid;
    unsigned long long used;
    char name[64];
} sim_proc;

typedef struct {
    int active;
    int remote_type;
    int remote_gpu; /* fixture slot of the peer GPU */
    char remote_bus[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
} sim_link;

struct nvmlDevice_st {
    int slot;
    int enumerated;
    int fault;
    unsigned int index;
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
    char serial[NVML_DEVICE_SERIAL_BUFFER_SIZE];
    char part_number[32];
    char vbios[NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE];
    char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
    unsigned int domain, bus, device;
    unsigned int pci_device_id, pci_subsystem_id;
    unsigned int minor;
    unsigned int board_id;
    int numa_node;
    unsigned long cpuset[CPUSET_WORDS];
    unsigned int arch;
    int cc_major, cc_minor;
    unsigned long long mem_total, mem_reserved, mem_used;
    unsigned int util_gpu, util_mem;
    unsigned int temp_gpu, temp_mem, t_shutdown, t_slowdown, t_gpu_max, t_mem_max;
    unsigned int power_draw, power_limit, power_default, power_min, power_max;
    unsigned int clk_sm, clk_mem, clk_max_sm, clk_max_mem;
    unsigned int pstate;
    int persistence; /* 0 off, 1 on, 2 follow nvidia-persistenced */
    int mig;
    int ecc_enabled;
    unsigned long long ecc[2][2]; /* [corrected, uncorrected][volatile, aggregate] */
    unsigned int rr_corr, rr_unc, rr_pending, rr_failure;
    unsigned int rr_hist[5]; /* max, high, partial, low, none */
    unsigned long long clk_reasons;
    unsigned int nvlink_version;
    int nlinks;
    sim_link links[MAX_LINKS];
    int nprocs;
    sim_proc procs[MAX_PROCS];
    int explicit_used;
    unsigned long long proc_extra; /* "process_extra_mib": a runtime process holds this much more */
    unsigned int pcie_gen, pcie_width, pcie_gen_max, pcie_width_max;
};

typedef struct {
    int slot;
    unsigned long long xid;
} sim_event;

struct nvmlEventSet_st {
    int used;
    unsigned long long mask[MAX_GPUS];
    int delivered[MAX_EVENTS];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_refcount = 0;
static struct nvmlDevice_st g_devs[MAX_GPUS];
static int g_ndevs = 0;             /* slots in the fixture */
static struct nvmlDevice_st *g_enum[MAX_GPUS];
static unsigned int g_nenum = 0;    /* enumerated (not absent) GPUs */
static sim_event g_events[MAX_EVENTS];
static int g_nevents = 0;
static struct nvmlEventSet_st g_sets[MAX_SETS];

/* ------------------------------------------------------------------------------------------ */
/* fixture loading                                                                            */

static void copy_str(char *dst, size_t size, const char *src)
{
    if (!src)
        src = "";
    snprintf(dst, size, "%s", src);
}

static unsigned int hexnum(const char *s, unsigned int fallback)
{
    char *end;
    unsigned long v;
    if (!s)
        return fallback;
    errno = 0;
    v = strtoul(s, &end, 0);
    if (errno || end == s)
        return fallback;
    return (unsigned int)v;
}

static void set_cpus(struct nvmlDevice_st *d, const simjson *ranges)
{
    simjson *r;
    memset(d->cpuset, 0, sizeof(d->cpuset));
    if (!ranges || ranges->type != SJ_ARR)
        return;
    for (r = ranges->child; r; r = r->next) {
        long long lo = simjson_int(simjson_at(r, 0), -1);
        long long hi = simjson_int(simjson_at(r, 1), lo);
        long long c;
        if (lo < 0)
            continue;
        for (c = lo; c <= hi && c < CPUSET_WORDS * 64; c++)
            d->cpuset[c / 64] |= 1UL << (c % 64);
    }
}

static const struct {
    const char *name;
    unsigned long long bit;
} REASONS[] = {
    {"gpu_idle", 0x1ULL},
    {"applications_clocks_setting", 0x2ULL},
    {"sw_power_cap", 0x4ULL},
    {"hw_slowdown", 0x8ULL},
    {"sync_boost", 0x10ULL},
    {"sw_thermal_slowdown", 0x20ULL},
    {"hw_thermal_slowdown", 0x40ULL},
    {"hw_power_brake_slowdown", 0x80ULL},
    {"display_clock_setting", 0x100ULL},
};

static unsigned long long reasons_mask(const simjson *list)
{
    unsigned long long mask = 0;
    simjson *r;
    size_t i;
    if (!list || list->type != SJ_ARR)
        return 0;
    for (r = list->child; r; r = r->next)
        for (i = 0; i < sizeof(REASONS) / sizeof(REASONS[0]); i++)
            if (r->type == SJ_STR && strcmp(r->str, REASONS[i].name) == 0)
                mask |= REASONS[i].bit;
    return mask;
}

static unsigned int arch_code(const char *arch)
{
    if (!arch) return NVML_DEVICE_ARCH_UNKNOWN;
    if (!strcmp(arch, "volta")) return NVML_DEVICE_ARCH_VOLTA;
    if (!strcmp(arch, "turing")) return NVML_DEVICE_ARCH_TURING;
    if (!strcmp(arch, "ampere")) return NVML_DEVICE_ARCH_AMPERE;
    if (!strcmp(arch, "ada")) return NVML_DEVICE_ARCH_ADA;
    if (!strcmp(arch, "hopper")) return NVML_DEVICE_ARCH_HOPPER;
    return NVML_DEVICE_ARCH_UNKNOWN;
}

#define MIB (1024ULL * 1024ULL)

static void load_gpu(struct nvmlDevice_st *d, int slot, const simjson *g)
{
    const simjson *pci = simjson_get(g, "pci");
    const simjson *mem = simjson_get(g, "memory");
    const simjson *temp = simjson_get(g, "temperature");
    const simjson *power = simjson_get(g, "power");
    const simjson *clocks = simjson_get(g, "clocks");
    const simjson *ecc = simjson_get(g, "ecc");
    const simjson *rr = simjson_get(g, "remapped_rows");
    const simjson *nvl = simjson_get(g, "nvlink");
    const simjson *procs = simjson_get(g, "processes");
    const simjson *persistence = simjson_get(g, "persistence_mode");
    const char *fault = simjson_str(simjson_get(g, "fault"), NULL);
    simjson *p;
    int i;
    unsigned long long proc_sum = 0;

    memset(d, 0, sizeof(*d));
    d->slot = slot;
    d->enumerated = !simjson_bool(simjson_get(g, "absent"), 0);
    d->fault = FAULT_NONE;
    if (fault && !strcmp(fault, "lost"))
        d->fault = FAULT_LOST;
    else if (fault && !strcmp(fault, "fallen_off_bus"))
        d->fault = FAULT_OFF_BUS;
    copy_str(d->name, sizeof(d->name), simjson_str(simjson_get(g, "name"), "NVIDIA Simulated GPU"));
    copy_str(d->uuid, sizeof(d->uuid), simjson_str(simjson_get(g, "uuid"), "GPU-00000000-0000-0000-0000-000000000000"));
    copy_str(d->serial, sizeof(d->serial), simjson_str(simjson_get(g, "serial"), "0000000000000"));
    copy_str(d->part_number, sizeof(d->part_number), simjson_str(simjson_get(g, "board_part_number"), ""));
    copy_str(d->vbios, sizeof(d->vbios), simjson_str(simjson_get(g, "vbios_version"), "92.00.00.00.00"));
    copy_str(d->bus_id, sizeof(d->bus_id), simjson_str(simjson_get(pci, "bus_id"), "00000000:00:00.0"));
    sscanf(d->bus_id, "%x:%x:%x", &d->domain, &d->bus, &d->device);
    d->pci_device_id = hexnum(simjson_str(simjson_get(pci, "device_id"), NULL), 0x20B210DE);
    d->pci_subsystem_id = hexnum(simjson_str(simjson_get(pci, "subsystem_id"), NULL), 0);
    d->pcie_gen = (unsigned int)simjson_int(simjson_get(pci, "link_gen"), 4);
    d->pcie_gen_max = (unsigned int)simjson_int(simjson_get(pci, "link_gen_max"), 4);
    d->pcie_width = (unsigned int)simjson_int(simjson_get(pci, "link_width"), 16);
    d->pcie_width_max = (unsigned int)simjson_int(simjson_get(pci, "link_width_max"), 16);
    d->minor = (unsigned int)simjson_int(simjson_get(g, "minor_number"), slot);
    d->board_id = (unsigned int)simjson_int(simjson_get(g, "board_id"), 0x100 + slot);
    d->numa_node = (int)simjson_int(simjson_get(g, "numa_node"), -1);
    set_cpus(d, simjson_get(g, "cpu_affinity"));
    d->arch = arch_code(simjson_str(simjson_get(g, "architecture"), NULL));
    d->cc_major = (int)simjson_int(simjson_at(simjson_get(g, "compute_capability"), 0), 8);
    d->cc_minor = (int)simjson_int(simjson_at(simjson_get(g, "compute_capability"), 1), 0);

    if (procs && procs->type == SJ_ARR) {
        for (p = procs->child; p && d->nprocs < MAX_PROCS; p = p->next) {
            sim_proc *sp = &d->procs[d->nprocs++];
            sp->pid = (unsigned int)simjson_int(simjson_get(p, "pid"), 0);
            sp->used = (unsigned long long)simjson_int(simjson_get(p, "used_mib"), 0) * MIB;
            copy_str(sp->name, sizeof(sp->name), simjson_str(simjson_get(p, "name"), "unknown"));
            proc_sum += sp->used;
        }
    }
    d->mem_total = (unsigned long long)simjson_int(simjson_get(mem, "total_mib"), 81920) * MIB;
    d->mem_reserved = (unsigned long long)simjson_int(simjson_get(mem, "reserved_mib"), 0) * MIB;
    d->explicit_used = simjson_get(mem, "used_mib") != NULL;
    if (d->explicit_used)
        d->mem_used = (unsigned long long)simjson_int(simjson_get(mem, "used_mib"), 0) * MIB;
    else
        d->mem_used = proc_sum;
    if (d->mem_used + d->mem_reserved > d->mem_total)
        d->mem_used = d->mem_total - d->mem_reserved;

    d->proc_extra = (unsigned long long)simjson_int(simjson_get(g, "process_extra_mib"), 0) * MIB;
    d->util_gpu = (unsigned int)simjson_int(simjson_path(g, "utilization.gpu"), 0);
    d->util_mem = (unsigned int)simjson_int(simjson_path(g, "utilization.memory"), 0);
    d->temp_gpu = (unsigned int)simjson_int(simjson_get(temp, "gpu_c"), 32);
    d->temp_mem = (unsigned int)simjson_int(simjson_get(temp, "memory_c"), d->temp_gpu + 8);
    d->t_shutdown = (unsigned int)simjson_int(simjson_get(temp, "shutdown_c"), 92);
    d->t_slowdown = (unsigned int)simjson_int(simjson_get(temp, "slowdown_c"), 89);
    d->t_gpu_max = (unsigned int)simjson_int(simjson_get(temp, "gpu_max_c"), 85);
    d->t_mem_max = (unsigned int)simjson_int(simjson_get(temp, "memory_max_c"), 95);
    d->power_draw = (unsigned int)simjson_int(simjson_get(power, "draw_mw"), 60000);
    d->power_limit = (unsigned int)simjson_int(simjson_get(power, "limit_mw"), 400000);
    d->power_default = (unsigned int)simjson_int(simjson_get(power, "default_limit_mw"), d->power_limit);
    d->power_min = (unsigned int)simjson_int(simjson_get(power, "min_limit_mw"), 100000);
    d->power_max = (unsigned int)simjson_int(simjson_get(power, "max_limit_mw"), d->power_limit);
    d->clk_sm = (unsigned int)simjson_int(simjson_get(clocks, "sm_mhz"), 210);
    d->clk_mem = (unsigned int)simjson_int(simjson_get(clocks, "memory_mhz"), 1593);
    d->clk_max_sm = (unsigned int)simjson_int(simjson_get(clocks, "max_sm_mhz"), 1410);
    d->clk_max_mem = (unsigned int)simjson_int(simjson_get(clocks, "max_memory_mhz"), 1593);
    d->pstate = (unsigned int)simjson_int(simjson_get(g, "pstate"), 0);
    if (persistence && persistence->type == SJ_STR && !strcmp(persistence->str, "daemon"))
        d->persistence = 2;
    else
        d->persistence = simjson_bool(persistence, 1);
    d->mig = simjson_bool(simjson_get(g, "mig_mode"), 0);
    d->ecc_enabled = simjson_bool(simjson_get(ecc, "enabled"), 1);
    d->ecc[0][0] = (unsigned long long)simjson_int(simjson_path(ecc, "volatile.corrected"), 0);
    d->ecc[1][0] = (unsigned long long)simjson_int(simjson_path(ecc, "volatile.uncorrected"), 0);
    d->ecc[0][1] = (unsigned long long)simjson_int(simjson_path(ecc, "aggregate.corrected"), 0);
    d->ecc[1][1] = (unsigned long long)simjson_int(simjson_path(ecc, "aggregate.uncorrected"), 0);
    d->rr_corr = (unsigned int)simjson_int(simjson_get(rr, "correctable"), 0);
    d->rr_unc = (unsigned int)simjson_int(simjson_get(rr, "uncorrectable"), 0);
    d->rr_pending = (unsigned int)simjson_bool(simjson_get(rr, "pending"), 0);
    d->rr_failure = (unsigned int)simjson_bool(simjson_get(rr, "failure"), 0);
    /* 640 spare rows per bank region on A100: all available unless rows were remapped */
    d->rr_hist[0] = 640 - (d->rr_corr + d->rr_unc > 640 ? 640 : d->rr_corr + d->rr_unc);
    d->clk_reasons = reasons_mask(simjson_get(g, "clocks_event_reasons"));

    d->nvlink_version = (unsigned int)simjson_int(simjson_get(nvl, "version"), 3);
    if (nvl) {
        const simjson *links = simjson_get(nvl, "links");
        simjson *l;
        for (l = links ? links->child : NULL, i = 0; l && i < MAX_LINKS; l = l->next, i++) {
            sim_link *sl = &d->links[i];
            const simjson *remote = simjson_get(l, "remote");
            const char *type = simjson_str(simjson_get(remote, "type"), "none");
            sl->active = simjson_bool(simjson_get(l, "active"), 1);
            sl->remote_gpu = -1;
            if (!strcmp(type, "switch")) {
                sl->remote_type = REMOTE_SWITCH;
                copy_str(sl->remote_bus, sizeof(sl->remote_bus), simjson_str(simjson_get(remote, "pci_bus_id"), ""));
            } else if (!strcmp(type, "gpu")) {
                sl->remote_type = REMOTE_GPU;
                sl->remote_gpu = (int)simjson_int(simjson_get(remote, "gpu"), -1);
            } else {
                sl->remote_type = REMOTE_NONE;
            }
        }
        d->nlinks = i;
    }
}

static int kernel_module_check(const simjson *root, char *why, size_t whylen)
{
    const simjson *km = simjson_get(root, "kernel_module");
    const char *state_file;
    char loaded[64] = "";
    FILE *f;
    if (!km)
        return NVML_SUCCESS;
    state_file = simjson_str(simjson_get(km, "state_file"), NULL);
    if (!state_file) {
        copy_str(loaded, sizeof(loaded), simjson_str(simjson_get(km, "version"), GPU_SIM_DRIVER_VERSION));
    } else {
        f = fopen(state_file, "r");
        if (!f) {
            snprintf(why, whylen, "kernel module not loaded (%s absent)", state_file);
            return NVML_ERROR_DRIVER_NOT_LOADED;
        }
        if (!fgets(loaded, sizeof(loaded), f))
            loaded[0] = '\0';
        fclose(f);
        loaded[strcspn(loaded, "\r\n ")] = '\0';
    }
    if (strcmp(loaded, GPU_SIM_DRIVER_VERSION) != 0) {
        snprintf(why, whylen, "kernel module %s, library %s", loaded, GPU_SIM_DRIVER_VERSION);
        return NVML_ERROR_LIB_RM_VERSION_MISMATCH;
    }
    return NVML_SUCCESS;
}

/* Processes started by containers: the stand-in container hook drops one JSON file per container
 * ({"pid": N, "name": "...", "gpus": ["GPU-..."], "used_mib": M, "usage_file": "..."}) into the
 * fixture's runtime_processes_dir. Files whose process has exited are ignored, so a stopped container
 * disappears from the GPU's process list as it would on a real driver.
 *
 * What the process uses on each GPU is its "usage" map ({"GPU-...": {"used_mib": M,
 * "utilization_gpu": U}}), read from the file itself or from "usage_file" (written by the stand-in
 * service inside the container, so it allocates and loads its GPUs as the real service would); a
 * GPU the map does not name gets "used_mib" (default 512 MiB, a CUDA context). Utilisation of a
 * device is the fixture's plus its processes', at most 100 %. */
static void add_runtime_process(struct nvmlDevice_st *d, unsigned int pid, const simjson *doc, const simjson *usage)
{
    const simjson *mine = simjson_get(usage, d->uuid);
    sim_proc *sp;
    unsigned int util;
    if (d->nprocs >= MAX_PROCS)
        return;
    sp = &d->procs[d->nprocs++];
    sp->pid = pid;
    sp->used = (unsigned long long)simjson_int(mine ? simjson_get(mine, "used_mib") : NULL,
                                               simjson_int(simjson_get(doc, "used_mib"), 512)) * MIB;
    sp->used += d->proc_extra;
    copy_str(sp->name, sizeof(sp->name), simjson_str(simjson_get(doc, "name"), "unknown"));
    if (!d->explicit_used) {
        d->mem_used += sp->used;
        if (d->mem_used + d->mem_reserved > d->mem_total)
            d->mem_used = d->mem_total - d->mem_reserved;
    }
    util = (unsigned int)simjson_int(mine ? simjson_get(mine, "utilization_gpu") : NULL, 0);
    d->util_gpu = d->util_gpu + util > 100 ? 100 : d->util_gpu + util;
    util = (unsigned int)simjson_int(mine ? simjson_get(mine, "utilization_memory") : NULL, 0);
    d->util_mem = d->util_mem + util > 100 ? 100 : d->util_mem + util;
}

static void load_runtime_processes(const simjson *root)
{
    const char *dir = simjson_str(simjson_get(root, "runtime_processes_dir"), NULL);
    DIR *dh;
    struct dirent *de;
    if (!dir || !(dh = opendir(dir)))
        return;
    while ((de = readdir(dh)) != NULL) {
        char path[512], procpath[64], err[128];
        simjson *doc, *g, *ufile = NULL;
        const simjson *usage;
        const char *upath;
        struct stat st;
        unsigned int pid;
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        doc = simjson_parse_file(path, err, sizeof(err));
        if (!doc)
            continue;
        pid = (unsigned int)simjson_int(simjson_get(doc, "pid"), 0);
        snprintf(procpath, sizeof(procpath), "/proc/%u", pid);
        if (pid && stat(procpath, &st) == 0) {
            const simjson *gpus = simjson_get(doc, "gpus");
            upath = simjson_str(simjson_get(doc, "usage_file"), NULL);
            if (upath)
                ufile = simjson_parse_file(upath, err, sizeof(err));
            usage = simjson_get(ufile ? ufile : doc, "usage");
            for (g = gpus ? gpus->child : NULL; g; g = g->next) {
                int s;
                for (s = 0; s < g_ndevs; s++)
                    if (g->type == SJ_STR && strcmp(g_devs[s].uuid, g->str) == 0)
                        add_runtime_process(&g_devs[s], pid, doc, usage);
            }
            if (ufile)
                simjson_free(ufile);
        }
        simjson_free(doc);
    }
    closedir(dh);
}

static nvmlReturn_t load_fixture(void)
{
    const char *path = getenv("GPU_SIM_FIXTURE");
    char err[256];
    char why[256] = "";
    simjson *root, *gpus, *g, *ev;
    int slot = 0, rc;
    if (!path || !*path)
        path = DEFAULT_FIXTURE;
    root = simjson_parse_file(path, err, sizeof(err));
    if (!root) {
        /* No machine description: as if no NVIDIA kernel driver were present. */
        if (getenv("GPU_SIM_DEBUG"))
            fprintf(stderr, "gpu-sim: %s: %s\n", path, err);
        return NVML_ERROR_DRIVER_NOT_LOADED;
    }
    /* A sick driver can hang nvmlInit: "nvml": {"init_delay_ms": N} simulates it. */
    {
        long long delay = simjson_int(simjson_path(root, "nvml.init_delay_ms"), 0);
        if (delay > 0) {
            struct timespec ts;
            ts.tv_sec = (time_t)(delay / 1000);
            ts.tv_nsec = (long)(delay % 1000) * 1000000L;
            nanosleep(&ts, NULL);
        }
    }
    rc = kernel_module_check(root, why, sizeof(why));
    if (rc != NVML_SUCCESS) {
        if (getenv("GPU_SIM_DEBUG"))
            fprintf(stderr, "gpu-sim: %s\n", why);
        simjson_free(root);
        return rc;
    }
    g_ndevs = 0;
    g_nenum = 0;
    gpus = simjson_get(root, "gpus");
    for (g = gpus ? gpus->child : NULL; g && slot < MAX_GPUS; g = g->next, slot++)
        load_gpu(&g_devs[slot], slot, g);
    g_ndevs = slot;
    load_runtime_processes(root);
    for (slot = 0; slot < g_ndevs; slot++) {
        if (g_devs[slot].enumerated) {
            g_devs[slot].index = g_nenum;
            g_enum[g_nenum++] = &g_devs[slot];
        }
    }
    g_nevents = 0;
    ev = simjson_get(root, "xid_events");
    for (g = ev ? ev->child : NULL; g && g_nevents < MAX_EVENTS; g = g->next) {
        int s = (int)simjson_int(simjson_get(g, "gpu"), -1);
        if (s < 0 || s >= g_ndevs)
            continue;
        g_events[g_nevents].slot = s;
        g_events[g_nevents].xid = (unsigned long long)simjson_int(simjson_get(g, "xid"), 999);
        g_nevents++;
    }
    /* fallen off the bus always comes with Xid 79 */
    for (slot = 0; slot < g_ndevs && g_nevents < MAX_EVENTS; slot++) {
        if (g_devs[slot].fault == FAULT_OFF_BUS) {
            g_events[g_nevents].slot = slot;
            g_events[g_nevents].xid = 79;
            g_nevents++;
        }
    }
    memset(g_sets, 0, sizeof(g_sets));
    simjson_free(root);
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

#define REQUIRE_INIT()                             \
    do {                                           \
        if (g_refcount <= 0)                       \
            return NVML_ERROR_UNINITIALIZED;       \
    } while (0)

static int valid_dev(nvmlDevice_t d)
{
    return d && d >= &g_devs[0] && d < &g_devs[g_ndevs] && d->enumerated;
}

/* Device queries: initialised, a valid handle, and the GPU reachable. */
#define DEV_QUERY(d)                                   \
    do {                                               \
        REQUIRE_INIT();                                \
        if (!valid_dev(d))                             \
            return NVML_ERROR_INVALID_ARGUMENT;        \
        if ((d)->fault != FAULT_NONE)                  \
            return NVML_ERROR_GPU_IS_LOST;             \
    } while (0)

/* Host-side properties that NVML knows even for a GPU that fell off the bus. */
#define DEV_HOST_QUERY(d)                              \
    do {                                               \
        REQUIRE_INIT();                                \
        if (!valid_dev(d))                             \
            return NVML_ERROR_INVALID_ARGUMENT;        \
    } while (0)

static nvmlReturn_t put_str(char *dst, unsigned int length, const char *src)
{
    if (!dst)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return NVML_SUCCESS;
}

static int persistence_on(const struct nvmlDevice_st *d)
{
    struct stat st;
    if (d->persistence == 2)
        return stat(PERSISTENCED_SOCKET, &st) == 0;
    return d->persistence;
}

static int on_nvswitch(const struct nvmlDevice_st *d)
{
    int i;
    for (i = 0; i < d->nlinks; i++)
        if (d->links[i].active && d->links[i].remote_type == REMOTE_SWITCH)
            return 1;
    return 0;
}

static int nvlink_between(const struct nvmlDevice_st *a, const struct nvmlDevice_st *b)
{
    int i;
    if (on_nvswitch(a) && on_nvswitch(b))
        return 1;
    for (i = 0; i < a->nlinks; i++)
        if (a->links[i].active && a->links[i].remote_type == REMOTE_GPU && a->links[i].remote_gpu == b->slot)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* init / shutdown / system                                                                   */

nvmlReturn_t DECLDIR nvmlInitWithFlags(unsigned int flags)
{
    nvmlReturn_t rc = NVML_SUCCESS;
    (void)flags;
    pthread_mutex_lock(&g_lock);
    if (g_refcount == 0)
        rc = load_fixture();
    if (rc == NVML_SUCCESS)
        g_refcount++;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

nvmlReturn_t DECLDIR nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t DECLDIR nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t DECLDIR nvmlShutdown(void)
{
    nvmlReturn_t rc = NVML_SUCCESS;
    pthread_mutex_lock(&g_lock);
    if (g_refcount <= 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else
        g_refcount--;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

const DECLDIR char *nvmlErrorString(nvmlReturn_t result)
{
    switch ((int)result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_INSUFFICIENT_POWER: return "Insufficient External Power";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_IRQ_ISSUE: return "Interrupt request issue";
    case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_CORRUPTED_INFOROM: return "Corrupted infoROM";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_RESET_REQUIRED: return "GPU requires restart";
    case NVML_ERROR_OPERATING_SYSTEM: return "The operating system has blocked the request.";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
    case NVML_ERROR_IN_USE: return "In use by another client";
    case NVML_ERROR_MEMORY: return "Insufficient Memory";
    case NVML_ERROR_NO_DATA: return "No data";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Version mismatch between the structure and the API";
    default: return "Unknown Error";
    }
}

nvmlReturn_t DECLDIR nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    REQUIRE_INIT();
    return put_str(version, length, GPU_SIM_DRIVER_VERSION);
}

nvmlReturn_t DECLDIR nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    /* Like the real library, the NVML version is known without nvmlInit. */
    return put_str(version, length, GPU_SIM_NVML_VERSION);
}

nvmlReturn_t DECLDIR nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)
{
    if (!cudaDriverVersion)
        return NVML_ERROR_INVALID_ARGUMENT;
    *cudaDriverVersion = GPU_SIM_CUDA_DRIVER_VERSION;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)
{
    return nvmlSystemGetCudaDriverVersion(cudaDriverVersion);
}

nvmlReturn_t DECLDIR nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length)
{
    int s, p;
    REQUIRE_INIT();
    for (s = 0; s < g_ndevs; s++)
        for (p = 0; p < g_devs[s].nprocs; p++)
            if (g_devs[s].procs[p].pid == pid) {
                /* like the real call: truncated to the buffer */
                if (!name || !length)
                    return NVML_ERROR_INVALID_ARGUMENT;
                snprintf(name, length, "%s", g_devs[s].procs[p].name);
                return NVML_SUCCESS;
            }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t DECLDIR nvmlUnitGetCount(unsigned int *unitCount)
{
    REQUIRE_INIT();
    if (!unitCount)
        return NVML_ERROR_INVALID_ARGUMENT;
    *unitCount = 0; /* S-class units only */
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* enumeration                                                                                */

nvmlReturn_t DECLDIR nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
    REQUIRE_INIT();
    if (!deviceCount)
        return NVML_ERROR_INVALID_ARGUMENT;
    *deviceCount = g_nenum;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetCount(unsigned int *deviceCount) { return nvmlDeviceGetCount_v2(deviceCount); }

nvmlReturn_t DECLDIR nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    REQUIRE_INIT();
    if (!device || index >= g_nenum)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (g_enum[index]->fault == FAULT_LOST)
        return NVML_ERROR_GPU_IS_LOST;
    *device = g_enum[index];
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

nvmlReturn_t DECLDIR nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    unsigned int i;
    REQUIRE_INIT();
    if (!uuid || !device)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (i = 0; i < g_nenum; i++) {
        if (strcmp(g_enum[i]->uuid, uuid) == 0) {
            if (g_enum[i]->fault != FAULT_NONE)
                return NVML_ERROR_GPU_IS_LOST;
            *device = g_enum[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t DECLDIR nvmlDeviceGetHandleBySerial(const char *serial, nvmlDevice_t *device)
{
    unsigned int i;
    REQUIRE_INIT();
    if (!serial || !device)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (i = 0; i < g_nenum; i++) {
        if (strcmp(g_enum[i]->serial, serial) == 0) {
            if (g_enum[i]->fault != FAULT_NONE)
                return NVML_ERROR_GPU_IS_LOST;
            *device = g_enum[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

static int bus_id_equal(const char *a, const char *b)
{
    unsigned int d1 = 0, b1 = 0, v1 = 0, d2 = 0, b2 = 0, v2 = 0;
    if (sscanf(a, "%x:%x:%x", &d1, &b1, &v1) != 3) {
        d1 = 0;
        if (sscanf(a, "%x:%x", &b1, &v1) != 2)
            return 0;
    }
    if (sscanf(b, "%x:%x:%x", &d2, &b2, &v2) != 3)
        return 0;
    return d1 == d2 && b1 == b2 && v1 == v2;
}

nvmlReturn_t DECLDIR nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device)
{
    unsigned int i;
    REQUIRE_INIT();
    if (!pciBusId || !device)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (i = 0; i < g_nenum; i++) {
        if (bus_id_equal(pciBusId, g_enum[i]->bus_id)) {
            if (g_enum[i]->fault == FAULT_LOST)
                return NVML_ERROR_GPU_IS_LOST;
            *device = g_enum[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t DECLDIR nvmlDeviceGetHandleByPciBusId(const char *pciBusId, nvmlDevice_t *device)
{
    return nvmlDeviceGetHandleByPciBusId_v2(pciBusId, device);
}

/* ------------------------------------------------------------------------------------------ */
/* identity                                                                                   */

nvmlReturn_t DECLDIR nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    DEV_HOST_QUERY(device);
    if (!index)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)
{
    DEV_HOST_QUERY(device);
    if (!minorNumber)
        return NVML_ERROR_INVALID_ARGUMENT;
    *minorNumber = device->minor;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    DEV_QUERY(device);
    return put_str(uuid, length, device->uuid);
}

nvmlReturn_t DECLDIR nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    DEV_QUERY(device);
    return put_str(name, length, device->name);
}

nvmlReturn_t DECLDIR nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length)
{
    DEV_QUERY(device);
    return put_str(serial, length, device->serial);
}

nvmlReturn_t DECLDIR nvmlDeviceGetBoardPartNumber(nvmlDevice_t device, char *partNumber, unsigned int length)
{
    DEV_QUERY(device);
    if (!device->part_number[0])
        return NVML_ERROR_NOT_SUPPORTED;
    return put_str(partNumber, length, device->part_number);
}

nvmlReturn_t DECLDIR nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version, unsigned int length)
{
    DEV_QUERY(device);
    return put_str(version, length, device->vbios);
}

nvmlReturn_t DECLDIR nvmlDeviceGetBrand(nvmlDevice_t device, nvmlBrandType_t *type)
{
    DEV_QUERY(device);
    if (!type)
        return NVML_ERROR_INVALID_ARGUMENT;
    *type = NVML_BRAND_NVIDIA;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetArchitecture(nvmlDevice_t device, nvmlDeviceArchitecture_t *arch)
{
    DEV_QUERY(device);
    if (!arch)
        return NVML_ERROR_INVALID_ARGUMENT;
    *arch = device->arch;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetBoardId(nvmlDevice_t device, unsigned int *boardId)
{
    DEV_QUERY(device);
    if (!boardId)
        return NVML_ERROR_INVALID_ARGUMENT;
    *boardId = device->board_id;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMultiGpuBoard(nvmlDevice_t device, unsigned int *multiGpuBool)
{
    DEV_QUERY(device);
    if (!multiGpuBool)
        return NVML_ERROR_INVALID_ARGUMENT;
    *multiGpuBool = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
    DEV_QUERY(device);
    if (!major || !minor)
        return NVML_ERROR_INVALID_ARGUMENT;
    *major = device->cc_major;
    *minor = device->cc_minor;
    return NVML_SUCCESS;
}

static void fill_pci(const struct nvmlDevice_st *d, nvmlPciInfo_t *pci)
{
    memset(pci, 0, sizeof(*pci));
    snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.0", d->domain & 0xFFFF, d->bus, d->device);
    snprintf(pci->busId, sizeof(pci->busId), "%08X:%02X:%02X.0", d->domain, d->bus, d->device);
    pci->domain = d->domain;
    pci->bus = d->bus;
    pci->device = d->device;
    pci->pciDeviceId = d->pci_device_id;
    pci->pciSubSystemId = d->pci_subsystem_id;
}

nvmlReturn_t DECLDIR nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    DEV_HOST_QUERY(device);
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    fill_pci(device, pci);
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci) { return nvmlDeviceGetPciInfo_v3(device, pci); }
nvmlReturn_t DECLDIR nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_t *pci) { return nvmlDeviceGetPciInfo_v3(device, pci); }

nvmlReturn_t DECLDIR nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int *currLinkGen)
{
    DEV_QUERY(device);
    if (!currLinkGen) return NVML_ERROR_INVALID_ARGUMENT;
    *currLinkGen = device->pcie_gen;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int *maxLinkGen)
{
    DEV_QUERY(device);
    if (!maxLinkGen) return NVML_ERROR_INVALID_ARGUMENT;
    *maxLinkGen = device->pcie_gen_max;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int *currLinkWidth)
{
    DEV_QUERY(device);
    if (!currLinkWidth) return NVML_ERROR_INVALID_ARGUMENT;
    *currLinkWidth = device->pcie_width;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device, unsigned int *maxLinkWidth)
{
    DEV_QUERY(device);
    if (!maxLinkWidth) return NVML_ERROR_INVALID_ARGUMENT;
    *maxLinkWidth = device->pcie_width_max;
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* locality                                                                                   */

nvmlReturn_t DECLDIR nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node)
{
    DEV_HOST_QUERY(device);
    if (!node)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device->numa_node < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *node = (unsigned int)device->numa_node;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetCpuAffinity(nvmlDevice_t device, unsigned int cpuSetSize, unsigned long *cpuSet)
{
    unsigned int i;
    DEV_HOST_QUERY(device);
    if (!cpuSet || cpuSetSize == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (i = 0; i < cpuSetSize; i++)
        cpuSet[i] = i < CPUSET_WORDS ? device->cpuset[i] : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetCpuAffinityWithinScope(nvmlDevice_t device, unsigned int cpuSetSize,
                                                         unsigned long *cpuSet, nvmlAffinityScope_t scope)
{
    (void)scope;
    return nvmlDeviceGetCpuAffinity(device, cpuSetSize, cpuSet);
}

nvmlReturn_t DECLDIR nvmlDeviceGetMemoryAffinity(nvmlDevice_t device, unsigned int nodeSetSize, unsigned long *nodeSet,
                                                 nvmlAffinityScope_t scope)
{
    unsigned int i;
    (void)scope;
    DEV_HOST_QUERY(device);
    if (!nodeSet || nodeSetSize == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (i = 0; i < nodeSetSize; i++)
        nodeSet[i] = 0;
    if (device->numa_node >= 0 && (unsigned int)device->numa_node / 64 < nodeSetSize)
        nodeSet[device->numa_node / 64] = 1UL << (device->numa_node % 64);
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t device1, nvmlDevice_t device2,
                                                         nvmlGpuTopologyLevel_t *pathInfo)
{
    DEV_QUERY(device1);
    DEV_QUERY(device2);
    if (!pathInfo)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device1 == device2)
        *pathInfo = NVML_TOPOLOGY_INTERNAL;
    else if (device1->numa_node == device2->numa_node)
        *pathInfo = NVML_TOPOLOGY_NODE;
    else
        *pathInfo = NVML_TOPOLOGY_SYSTEM;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetP2PStatus(nvmlDevice_t device1, nvmlDevice_t device2, nvmlGpuP2PCapsIndex_t p2pIndex,
                                            nvmlGpuP2PStatus_t *p2pStatus)
{
    DEV_QUERY(device1);
    DEV_QUERY(device2);
    if (!p2pStatus)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device1 == device2) {
        *p2pStatus = NVML_P2P_STATUS_NOT_SUPPORTED;
        return NVML_SUCCESS;
    }
    switch (p2pIndex) {
    case NVML_P2P_CAPS_INDEX_NVLINK:
        *p2pStatus = nvlink_between(device1, device2) ? NVML_P2P_STATUS_OK : NVML_P2P_STATUS_NOT_SUPPORTED;
        break;
    case NVML_P2P_CAPS_INDEX_READ:
    case NVML_P2P_CAPS_INDEX_WRITE:
    case NVML_P2P_CAPS_INDEX_ATOMICS:
        *p2pStatus = nvlink_between(device1, device2) || device1->numa_node == device2->numa_node
                         ? NVML_P2P_STATUS_OK : NVML_P2P_STATUS_CHIPSET_NOT_SUPPORTED;
        break;
    case NVML_P2P_CAPS_INDEX_PCI:
        *p2pStatus = NVML_P2P_STATUS_OK;
        break;
    default:
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* memory, utilisation, thermals, power, clocks                                               */

nvmlReturn_t DECLDIR nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    DEV_QUERY(device);
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = device->mem_total;
    memory->used = device->mem_used + device->mem_reserved;
    memory->free = device->mem_total - memory->used;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    DEV_QUERY(device);
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    memory->total = device->mem_total;
    memory->reserved = device->mem_reserved;
    memory->used = device->mem_used;
    memory->free = device->mem_total - device->mem_reserved - device->mem_used;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
    DEV_QUERY(device);
    if (!utilization)
        return NVML_ERROR_INVALID_ARGUMENT;
    utilization->gpu = device->util_gpu;
    utilization->memory = device->util_mem;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType, unsigned int *temp)
{
    DEV_QUERY(device);
    if (!temp || sensorType != NVML_TEMPERATURE_GPU)
        return NVML_ERROR_INVALID_ARGUMENT;
    *temp = device->temp_gpu;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_t *temperature)
{
    DEV_QUERY(device);
    if (!temperature)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (temperature->version != nvmlTemperature_v1)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (temperature->sensorType != NVML_TEMPERATURE_GPU)
        return NVML_ERROR_INVALID_ARGUMENT;
    temperature->temperature = (int)device->temp_gpu;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, nvmlTemperatureThresholds_t thresholdType,
                                                       unsigned int *temp)
{
    DEV_QUERY(device);
    if (!temp)
        return NVML_ERROR_INVALID_ARGUMENT;
    switch (thresholdType) {
    case NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: *temp = device->t_shutdown; break;
    case NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: *temp = device->t_slowdown; break;
    case NVML_TEMPERATURE_THRESHOLD_GPU_MAX: *temp = device->t_gpu_max; break;
    case NVML_TEMPERATURE_THRESHOLD_MEM_MAX: *temp = device->t_mem_max; break;
    default: return NVML_ERROR_NOT_SUPPORTED;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetFanSpeed(nvmlDevice_t device, unsigned int *speed)
{
    DEV_QUERY(device);
    (void)speed;
    return NVML_ERROR_NOT_SUPPORTED; /* passively cooled SXM/PCIe data-centre boards */
}

nvmlReturn_t DECLDIR nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)
{
    DEV_QUERY(device);
    if (!power)
        return NVML_ERROR_INVALID_ARGUMENT;
    *power = device->power_draw;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit)
{
    DEV_QUERY(device);
    if (!limit)
        return NVML_ERROR_INVALID_ARGUMENT;
    *limit = device->power_limit;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit)
{
    return nvmlDeviceGetEnforcedPowerLimit(device, limit);
}

nvmlReturn_t DECLDIR nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device, unsigned int *defaultLimit)
{
    DEV_QUERY(device);
    if (!defaultLimit)
        return NVML_ERROR_INVALID_ARGUMENT;
    *defaultLimit = device->power_default;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device, unsigned int *minLimit,
                                                                  unsigned int *maxLimit)
{
    DEV_QUERY(device);
    if (!minLimit || !maxLimit)
        return NVML_ERROR_INVALID_ARGUMENT;
    *minLimit = device->power_min;
    *maxLimit = device->power_max;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetPowerManagementMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
    DEV_QUERY(device);
    if (!mode)
        return NVML_ERROR_INVALID_ARGUMENT;
    *mode = NVML_FEATURE_ENABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy)
{
    DEV_QUERY(device);
    if (!energy)
        return NVML_ERROR_INVALID_ARGUMENT;
    *energy = (unsigned long long)device->power_draw * 3600ULL; /* one hour at the current draw, in mJ */
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetPerformanceState(nvmlDevice_t device, nvmlPstates_t *pState)
{
    DEV_QUERY(device);
    if (!pState)
        return NVML_ERROR_INVALID_ARGUMENT;
    *pState = (nvmlPstates_t)device->pstate;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetPowerState(nvmlDevice_t device, nvmlPstates_t *pState)
{
    return nvmlDeviceGetPerformanceState(device, pState);
}

nvmlReturn_t DECLDIR nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock)
{
    DEV_QUERY(device);
    if (!clock)
        return NVML_ERROR_INVALID_ARGUMENT;
    switch (type) {
    case NVML_CLOCK_GRAPHICS:
    case NVML_CLOCK_SM: *clock = device->clk_sm; break;
    case NVML_CLOCK_MEM: *clock = device->clk_mem; break;
    case NVML_CLOCK_VIDEO: *clock = device->clk_sm * 9 / 10; break;
    default: return NVML_ERROR_INVALID_ARGUMENT;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock)
{
    DEV_QUERY(device);
    if (!clock)
        return NVML_ERROR_INVALID_ARGUMENT;
    switch (type) {
    case NVML_CLOCK_GRAPHICS:
    case NVML_CLOCK_SM: *clock = device->clk_max_sm; break;
    case NVML_CLOCK_MEM: *clock = device->clk_max_mem; break;
    case NVML_CLOCK_VIDEO: *clock = device->clk_max_sm * 9 / 10; break;
    default: return NVML_ERROR_INVALID_ARGUMENT;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons)
{
    DEV_QUERY(device);
    if (!reasons)
        return NVML_ERROR_INVALID_ARGUMENT;
    *reasons = device->clk_reasons;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons)
{
    return nvmlDeviceGetCurrentClocksEventReasons(device, reasons);
}

nvmlReturn_t DECLDIR nvmlDeviceGetSupportedClocksEventReasons(nvmlDevice_t device, unsigned long long *supported)
{
    DEV_QUERY(device);
    if (!supported)
        return NVML_ERROR_INVALID_ARGUMENT;
    *supported = 0x1FFULL;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetSupportedClocksThrottleReasons(nvmlDevice_t device, unsigned long long *supported)
{
    return nvmlDeviceGetSupportedClocksEventReasons(device, supported);
}

/* ------------------------------------------------------------------------------------------ */
/* modes                                                                                      */

nvmlReturn_t DECLDIR nvmlDeviceGetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
    DEV_QUERY(device);
    if (!mode)
        return NVML_ERROR_INVALID_ARGUMENT;
    *mode = persistence_on(device) ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode)
{
    DEV_QUERY(device);
    if (!currentMode || !pendingMode)
        return NVML_ERROR_INVALID_ARGUMENT;
    *currentMode = *pendingMode = device->mig ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetComputeMode(nvmlDevice_t device, nvmlComputeMode_t *mode)
{
    DEV_QUERY(device);
    if (!mode)
        return NVML_ERROR_INVALID_ARGUMENT;
    *mode = NVML_COMPUTEMODE_DEFAULT;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetDisplayMode(nvmlDevice_t device, nvmlEnableState_t *display)
{
    DEV_QUERY(device);
    if (!display)
        return NVML_ERROR_INVALID_ARGUMENT;
    *display = NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetDisplayActive(nvmlDevice_t device, nvmlEnableState_t *isActive)
{
    return nvmlDeviceGetDisplayMode(device, isActive);
}

nvmlReturn_t DECLDIR nvmlDeviceGetAccountingMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
    return nvmlDeviceGetDisplayMode(device, mode);
}

/* ------------------------------------------------------------------------------------------ */
/* ECC and row remapping                                                                      */

nvmlReturn_t DECLDIR nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current, nvmlEnableState_t *pending)
{
    DEV_QUERY(device);
    if (!current || !pending)
        return NVML_ERROR_INVALID_ARGUMENT;
    *current = *pending = device->ecc_enabled ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetDefaultEccMode(nvmlDevice_t device, nvmlEnableState_t *defaultMode)
{
    DEV_QUERY(device);
    if (!defaultMode)
        return NVML_ERROR_INVALID_ARGUMENT;
    *defaultMode = NVML_FEATURE_ENABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t errorType,
                                                 nvmlEccCounterType_t counterType, unsigned long long *eccCounts)
{
    DEV_QUERY(device);
    if (!eccCounts || (unsigned int)errorType > 1 || (unsigned int)counterType > 1)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!device->ecc_enabled)
        return NVML_ERROR_NOT_SUPPORTED;
    *eccCounts = device->ecc[errorType][counterType];
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corrRows, unsigned int *uncRows,
                                               unsigned int *isPending, unsigned int *failureOccurred)
{
    DEV_QUERY(device);
    if (!corrRows || !uncRows || !isPending || !failureOccurred)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device->arch < NVML_DEVICE_ARCH_AMPERE)
        return NVML_ERROR_NOT_SUPPORTED;
    *corrRows = device->rr_corr;
    *uncRows = device->rr_unc;
    *isPending = device->rr_pending;
    *failureOccurred = device->rr_failure;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetRowRemapperHistogram(nvmlDevice_t device, nvmlRowRemapperHistogramValues_t *values)
{
    DEV_QUERY(device);
    if (!values)
        return NVML_ERROR_INVALID_ARGUMENT;
    values->max = device->rr_hist[0];
    values->high = device->rr_hist[1];
    values->partial = device->rr_hist[2];
    values->low = device->rr_hist[3];
    values->none = device->rr_hist[4];
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, nvmlEnableState_t *isPending)
{
    DEV_QUERY(device);
    (void)isPending;
    return NVML_ERROR_NOT_SUPPORTED; /* Ampere and later remap rows instead of retiring pages */
}

/* ------------------------------------------------------------------------------------------ */
/* NVLink                                                                                     */

#define LINK_QUERY(d, link)                            \
    do {                                               \
        DEV_QUERY(d);                                  \
        if ((int)(link) >= (d)->nlinks)                \
            return NVML_ERROR_INVALID_ARGUMENT;        \
    } while (0)

nvmlReturn_t DECLDIR nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link, nvmlEnableState_t *isActive)
{
    if (device && valid_dev(device) && device->fault == FAULT_NONE && device->nlinks == 0)
        return NVML_ERROR_NOT_SUPPORTED;
    LINK_QUERY(device, link);
    if (!isActive)
        return NVML_ERROR_INVALID_ARGUMENT;
    *isActive = device->links[link].active ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetNvLinkVersion(nvmlDevice_t device, unsigned int link, unsigned int *version)
{
    LINK_QUERY(device, link);
    if (!version)
        return NVML_ERROR_INVALID_ARGUMENT;
    *version = device->nvlink_version;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned int link, nvmlPciInfo_t *pci)
{
    const sim_link *l;
    LINK_QUERY(device, link);
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    l = &device->links[link];
    if (l->remote_type == REMOTE_GPU && l->remote_gpu >= 0 && l->remote_gpu < g_ndevs) {
        fill_pci(&g_devs[l->remote_gpu], pci);
    } else if (l->remote_type == REMOTE_SWITCH) {
        unsigned int dom = 0, bus = 0, dev = 0;
        memset(pci, 0, sizeof(*pci));
        sscanf(l->remote_bus, "%x:%x:%x", &dom, &bus, &dev);
        pci->domain = dom;
        pci->bus = bus;
        pci->device = dev;
        pci->pciDeviceId = 0x1AF110DE; /* NVSwitch */
        snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.0", dom & 0xFFFF, bus, dev);
        snprintf(pci->busId, sizeof(pci->busId), "%08X:%02X:%02X.0", dom, bus, dev);
    } else {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetNvLinkRemotePciInfo(nvmlDevice_t device, unsigned int link, nvmlPciInfo_t *pci)
{
    return nvmlDeviceGetNvLinkRemotePciInfo_v2(device, link, pci);
}

nvmlReturn_t DECLDIR nvmlDeviceGetNvLinkRemoteDeviceType(nvmlDevice_t device, unsigned int link,
                                                         nvmlIntNvLinkDeviceType_t *pNvLinkDeviceType)
{
    LINK_QUERY(device, link);
    if (!pNvLinkDeviceType)
        return NVML_ERROR_INVALID_ARGUMENT;
    switch (device->links[link].remote_type) {
    case REMOTE_GPU: *pNvLinkDeviceType = NVML_NVLINK_DEVICE_TYPE_GPU; break;
    case REMOTE_SWITCH: *pNvLinkDeviceType = NVML_NVLINK_DEVICE_TYPE_SWITCH; break;
    default: *pNvLinkDeviceType = NVML_NVLINK_DEVICE_TYPE_UNKNOWN;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetNvLinkCapability(nvmlDevice_t device, unsigned int link,
                                                   nvmlNvLinkCapability_t capability, unsigned int *capResult)
{
    LINK_QUERY(device, link);
    if (!capResult)
        return NVML_ERROR_INVALID_ARGUMENT;
    switch (capability) {
    case NVML_NVLINK_CAP_P2P_SUPPORTED:
    case NVML_NVLINK_CAP_P2P_ATOMICS:
        *capResult = 1;
        break;
    default:
        *capResult = 0;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t device, unsigned int link,
                                                     nvmlNvLinkErrorCounter_t counter, unsigned long long *counterValue)
{
    LINK_QUERY(device, link);
    (void)counter;
    if (!counterValue)
        return NVML_ERROR_INVALID_ARGUMENT;
    *counterValue = 0;
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* processes                                                                                  */

static nvmlReturn_t list_procs(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos)
{
    int i;
    DEV_QUERY(device);
    if (!infoCount)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (*infoCount < (unsigned int)device->nprocs || (!infos && device->nprocs > 0)) {
        *infoCount = (unsigned int)device->nprocs;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (i = 0; i < device->nprocs; i++) {
        infos[i].pid = device->procs[i].pid;
        infos[i].usedGpuMemory = device->procs[i].used;
        infos[i].gpuInstanceId = 0xFFFFFFFF;
        infos[i].computeInstanceId = 0xFFFFFFFF;
    }
    *infoCount = (unsigned int)device->nprocs;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                             nvmlProcessInfo_t *infos)
{
    return list_procs(device, infoCount, infos);
}

nvmlReturn_t DECLDIR nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
                                                             nvmlProcessInfo_v2_t *infos)
{
    return list_procs(device, infoCount, infos);
}

nvmlReturn_t DECLDIR nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                              nvmlProcessInfo_t *infos)
{
    DEV_QUERY(device);
    (void)infos;
    if (!infoCount)
        return NVML_ERROR_INVALID_ARGUMENT;
    *infoCount = 0; /* headless compute boards */
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                                nvmlProcessInfo_t *infos)
{
    return nvmlDeviceGetGraphicsRunningProcesses_v3(device, infoCount, infos);
}

/* ------------------------------------------------------------------------------------------ */
/* events (Xid)                                                                               */

#define SUPPORTED_EVENTS (nvmlEventTypeSingleBitEccError | nvmlEventTypeDoubleBitEccError | nvmlEventTypePState | \
                          nvmlEventTypeXidCriticalError | nvmlEventTypeClock)

nvmlReturn_t DECLDIR nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *eventTypes)
{
    DEV_QUERY(device);
    if (!eventTypes)
        return NVML_ERROR_INVALID_ARGUMENT;
    *eventTypes = SUPPORTED_EVENTS;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlEventSetCreate(nvmlEventSet_t *set)
{
    int i;
    REQUIRE_INIT();
    if (!set)
        return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&g_lock);
    for (i = 0; i < MAX_SETS; i++) {
        if (!g_sets[i].used) {
            memset(&g_sets[i], 0, sizeof(g_sets[i]));
            g_sets[i].used = 1;
            *set = &g_sets[i];
            pthread_mutex_unlock(&g_lock);
            return NVML_SUCCESS;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return NVML_ERROR_MEMORY;
}

static int valid_set(nvmlEventSet_t set)
{
    return set && set >= &g_sets[0] && set < &g_sets[MAX_SETS] && set->used;
}

nvmlReturn_t DECLDIR nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set)
{
    /* registering on a GPU that fell off the bus still works: that is how Xid 79 is seen */
    DEV_HOST_QUERY(device);
    if (device->fault == FAULT_LOST)
        return NVML_ERROR_GPU_IS_LOST;
    if (!valid_set(set))
        return NVML_ERROR_INVALID_ARGUMENT;
    if (eventTypes & ~SUPPORTED_EVENTS)
        return NVML_ERROR_NOT_SUPPORTED;
    set->mask[device->slot] |= eventTypes;
    return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)
{
    int i;
    REQUIRE_INIT();
    if (!valid_set(set) || !data)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (i = 0; i < g_nevents; i++) {
        const sim_event *ev = &g_events[i];
        if (set->delivered[i] || !(set->mask[ev->slot] & nvmlEventTypeXidCriticalError))
            continue;
        set->delivered[i] = 1;
        memset(data, 0, sizeof(*data));
        data->device = &g_devs[ev->slot];
        data->eventType = nvmlEventTypeXidCriticalError;
        data->eventData = ev->xid;
        data->gpuInstanceId = 0xFFFFFFFF;
        data->computeInstanceId = 0xFFFFFFFF;
        return NVML_SUCCESS;
    }
    if (timeoutms) {
        struct timespec ts;
        ts.tv_sec = timeoutms / 1000;
        ts.tv_nsec = (long)(timeoutms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }
    return NVML_ERROR_TIMEOUT;
}

nvmlReturn_t DECLDIR nvmlEventSetWait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)
{
    return nvmlEventSetWait_v2(set, data, timeoutms);
}

nvmlReturn_t DECLDIR nvmlEventSetFree(nvmlEventSet_t set)
{
    REQUIRE_INIT();
    if (!valid_set(set))
        return NVML_ERROR_INVALID_ARGUMENT;
    set->used = 0;
    return NVML_SUCCESS;
}
