"""ctypes access to libnvidia-ml.so.1 for the simulator's stand-in tools (nvidia-smi,
nv-fabricmanager, nvidia-ctk). Standard library only: it runs on bare nodes and in service images.
Going through the library (not the fixture) keeps the tools honest: they see what NVML sees.
"""
import ctypes

NVML_SUCCESS = 0
ERROR_NAMES = {
    1: "ERROR_UNINITIALIZED", 2: "ERROR_INVALID_ARGUMENT", 3: "ERROR_NOT_SUPPORTED",
    6: "ERROR_NOT_FOUND", 7: "ERROR_INSUFFICIENT_SIZE", 9: "ERROR_DRIVER_NOT_LOADED",
    10: "ERROR_TIMEOUT", 12: "ERROR_LIBRARY_NOT_FOUND", 13: "ERROR_FUNCTION_NOT_FOUND",
    15: "ERROR_GPU_IS_LOST", 18: "ERROR_LIB_RM_VERSION_MISMATCH", 999: "ERROR_UNKNOWN",
}


class NVMLError(Exception):
    def __init__(self, code, text):
        self.code = code
        self.name = ERROR_NAMES.get(code, "ERROR_%d" % code)
        super().__init__(text)


class PciInfo(ctypes.Structure):
    _fields_ = [("busIdLegacy", ctypes.c_char * 16), ("domain", ctypes.c_uint), ("bus", ctypes.c_uint),
                ("device", ctypes.c_uint), ("pciDeviceId", ctypes.c_uint), ("pciSubSystemId", ctypes.c_uint),
                ("busId", ctypes.c_char * 32)]


class Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class ProcessInfo(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong),
                ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


class NVML:
    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        except OSError as exc:
            raise NVMLError(12, "NVML Shared Library Not Found") from exc
        self.lib.nvmlErrorString.restype = ctypes.c_char_p

    def check(self, rc):
        if rc != NVML_SUCCESS:
            raise NVMLError(rc, self.lib.nvmlErrorString(rc).decode())

    def init(self):
        self.check(self.lib.nvmlInit_v2())

    def shutdown(self):
        self.check(self.lib.nvmlShutdown())

    def _str(self, fn, *args, size=96):
        buf = ctypes.create_string_buffer(size)
        self.check(fn(*args, buf, ctypes.c_uint(size)))
        return buf.value.decode()

    def driver_version(self):
        return self._str(self.lib.nvmlSystemGetDriverVersion)

    def cuda_version(self):
        v = ctypes.c_int()
        self.check(self.lib.nvmlSystemGetCudaDriverVersion_v2(ctypes.byref(v)))
        return "%d.%d" % (v.value // 1000, (v.value % 1000) // 10)

    def count(self):
        n = ctypes.c_uint()
        self.check(self.lib.nvmlDeviceGetCount_v2(ctypes.byref(n)))
        return n.value

    def handle(self, index):
        h = ctypes.c_void_p()
        self.check(self.lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(h)))
        return h

    def name(self, h):
        return self._str(self.lib.nvmlDeviceGetName, h)

    def uuid(self, h):
        return self._str(self.lib.nvmlDeviceGetUUID, h)

    def serial(self, h):
        return self._str(self.lib.nvmlDeviceGetSerial, h)

    def minor(self, h):
        v = ctypes.c_uint()
        self.check(self.lib.nvmlDeviceGetMinorNumber(h, ctypes.byref(v)))
        return v.value

    def pci(self, h):
        p = PciInfo()
        self.check(self.lib.nvmlDeviceGetPciInfo_v3(h, ctypes.byref(p)))
        return p.busId.decode()

    def memory(self, h):
        m = Memory()
        self.check(self.lib.nvmlDeviceGetMemoryInfo(h, ctypes.byref(m)))
        return m

    def utilization(self, h):
        u = Utilization()
        self.check(self.lib.nvmlDeviceGetUtilizationRates(h, ctypes.byref(u)))
        return u

    def _uint(self, fn, *args):
        v = ctypes.c_uint()
        self.check(fn(*args, ctypes.byref(v)))
        return v.value

    def temperature(self, h):
        return self._uint(self.lib.nvmlDeviceGetTemperature, h, ctypes.c_int(0))

    def power(self, h):
        return self._uint(self.lib.nvmlDeviceGetPowerUsage, h), self._uint(self.lib.nvmlDeviceGetEnforcedPowerLimit, h)

    def persistence(self, h):
        return self._uint(self.lib.nvmlDeviceGetPersistenceMode, h) == 1

    def pstate(self, h):
        return self._uint(self.lib.nvmlDeviceGetPerformanceState, h)

    def ecc_uncorrected_volatile(self, h):
        v = ctypes.c_ulonglong()
        self.check(self.lib.nvmlDeviceGetTotalEccErrors(h, ctypes.c_int(1), ctypes.c_int(0), ctypes.byref(v)))
        return v.value

    def nvlink_state(self, h, link):
        return self._uint(self.lib.nvmlDeviceGetNvLinkState, h, ctypes.c_uint(link))

    def processes(self, h):
        count = ctypes.c_uint(0)
        rc = self.lib.nvmlDeviceGetComputeRunningProcesses_v3(h, ctypes.byref(count), None)
        if rc == NVML_SUCCESS:
            return []
        if rc != 7:
            self.check(rc)
        arr = (ProcessInfo * (count.value + 4))()
        count = ctypes.c_uint(count.value + 4)
        self.check(self.lib.nvmlDeviceGetComputeRunningProcesses_v3(h, ctypes.byref(count), arr))
        out = []
        for i in range(count.value):
            name = ctypes.create_string_buffer(64)
            rc = self.lib.nvmlSystemGetProcessName(ctypes.c_uint(arr[i].pid), name, ctypes.c_uint(64))
            out.append((arr[i].pid, arr[i].usedGpuMemory, name.value.decode() if rc == 0 else "-"))
        return out
