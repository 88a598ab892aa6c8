// The subset of the wasmtime 50 C API that peon-wasm uses, declared by us from wasmtime's C API
// documentation (https://docs.wasmtime.dev/c-api/) and loaded at run time with dlopen/dlsym, so the
// package builds and the WasmKit engine works on machines without wasmtime.
//
// Only layouts we read or write are spelled out; everything else is an opaque pointer. The layouts are
// those of wasmtime 50 on 64-bit targets: the loader refuses another major version, and the Swift
// tests exercise every struct declared here through real calls.
//
// Ownership follows the C API: a function that returns `wasmtime_error_t *` or `wasm_trap_t *` hands
// the caller an owned object to delete; `*_vec_t` out-parameters are owned and freed with their
// `*_vec_delete`; types obtained from an import/export type are borrowed from it.
#ifndef PEON_CWASMTIME_H
#define PEON_CWASMTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma clang assume_nonnull begin

// MARK: Opaque handles

typedef struct wasm_config_t wasm_config_t;
typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasm_valtype_t wasm_valtype_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasm_memorytype_t wasm_memorytype_t;
typedef struct wasm_externtype_t wasm_externtype_t;
typedef struct wasm_importtype_t wasm_importtype_t;
typedef struct wasm_exporttype_t wasm_exporttype_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasmtime_error_t wasmtime_error_t;
typedef struct wasmtime_module_t wasmtime_module_t;
typedef struct wasmtime_store_t wasmtime_store_t;
typedef struct wasmtime_context_t wasmtime_context_t;
typedef struct wasmtime_caller_t wasmtime_caller_t;

// MARK: Vectors (a length and an owned array)

/// Bytes; also the type of names and messages.
typedef struct wasm_byte_vec_t {
    size_t size;
    uint8_t *_Nullable data;
} wasm_byte_vec_t;

typedef struct wasm_valtype_vec_t {
    size_t size;
    wasm_valtype_t *_Nullable *_Nullable data;
} wasm_valtype_vec_t;

typedef struct wasm_importtype_vec_t {
    size_t size;
    wasm_importtype_t *_Nullable *_Nullable data;
} wasm_importtype_vec_t;

typedef struct wasm_exporttype_vec_t {
    size_t size;
    wasm_exporttype_t *_Nullable *_Nullable data;
} wasm_exporttype_vec_t;

// MARK: Constants

/// `wasm_valkind_t` values (types in signatures).
enum {
    PEON_WASM_I32 = 0,
    PEON_WASM_I64 = 1,
    PEON_WASM_F32 = 2,
    PEON_WASM_F64 = 3,
    PEON_WASM_V128 = 4,
    PEON_WASM_EXTERNREF = 128,
    PEON_WASM_FUNCREF = 129,
};

/// `wasm_externkind_t` values (kinds of imports and exports in module types).
enum {
    PEON_WASM_EXTERN_FUNC = 0,
    PEON_WASM_EXTERN_GLOBAL = 1,
    PEON_WASM_EXTERN_TABLE = 2,
    PEON_WASM_EXTERN_MEMORY = 3,
    PEON_WASM_EXTERN_TAG = 4,
};

/// `wasmtime_valkind_t` values (the tag of a `wasmtime_val_t`).
enum {
    PEON_WASMTIME_I32 = 0,
    PEON_WASMTIME_I64 = 1,
    PEON_WASMTIME_F32 = 2,
    PEON_WASMTIME_F64 = 3,
};

/// `wasmtime_extern_kind_t` values (the tag of a `wasmtime_extern_t`).
enum {
    PEON_WASMTIME_EXTERN_FUNC = 0,
    PEON_WASMTIME_EXTERN_GLOBAL = 1,
    PEON_WASMTIME_EXTERN_TABLE = 2,
    PEON_WASMTIME_EXTERN_MEMORY = 3,
};

/// `wasmtime_trap_code_t` values peon-wasm maps to its own trap reasons.
enum {
    PEON_WASMTIME_TRAP_STACK_OVERFLOW = 0,
    PEON_WASMTIME_TRAP_MEMORY_OUT_OF_BOUNDS = 1,
    PEON_WASMTIME_TRAP_HEAP_MISALIGNED = 2,
    PEON_WASMTIME_TRAP_TABLE_OUT_OF_BOUNDS = 3,
    PEON_WASMTIME_TRAP_INDIRECT_CALL_TO_NULL = 4,
    PEON_WASMTIME_TRAP_BAD_SIGNATURE = 5,
    PEON_WASMTIME_TRAP_INTEGER_OVERFLOW = 6,
    PEON_WASMTIME_TRAP_INTEGER_DIVISION_BY_ZERO = 7,
    PEON_WASMTIME_TRAP_BAD_CONVERSION_TO_INTEGER = 8,
    PEON_WASMTIME_TRAP_UNREACHABLE_CODE_REACHED = 9,
    PEON_WASMTIME_TRAP_INTERRUPT = 10,
    PEON_WASMTIME_TRAP_OUT_OF_FUEL = 11,
    PEON_WASMTIME_TRAP_NULL_REFERENCE = 13,
};

// MARK: Store-owned handles (plain values naming an object inside a store)

/// A function in a store: 16 bytes.
typedef struct wasmtime_func_t {
    uint64_t store_id;
    void *_Nullable private_data;
} wasmtime_func_t;

/// A linear memory in a store: 24 bytes (a 16-byte inner part, then a 4-byte index, padded).
typedef struct wasmtime_memory_t {
    struct {
        uint64_t store_id;
        uint32_t private_index1;
    } inner;
    uint32_t private_index2;
} wasmtime_memory_t;

/// An instance in a store: 16 bytes.
typedef struct wasmtime_instance_t {
    uint64_t store_id;
    size_t private_index;
} wasmtime_instance_t;

/// The largest member of the handle unions (a global or a GC reference): 24 bytes, 8-aligned.
typedef struct peon_wasmtime_handle_storage {
    uint64_t words[3];
} peon_wasmtime_handle_storage;

/// An import or export value: a kind tag, then a union of handles at offset 8; 32 bytes.
typedef struct wasmtime_extern_t {
    uint8_t kind;
    union {
        wasmtime_func_t func;
        wasmtime_memory_t memory;
        peon_wasmtime_handle_storage storage;
    } of;
} wasmtime_extern_t;

/// A value: a kind tag, then a union at offset 8; 32 bytes.
typedef struct wasmtime_val_t {
    uint8_t kind;
    union {
        int32_t i32;
        int64_t i64;
        float f32;
        double f64;
        peon_wasmtime_handle_storage storage;
    } of;
} wasmtime_val_t;

// MARK: Callback types

/// A host function: returns NULL on success, or an owned trap that ends the guest's call.
typedef wasm_trap_t *_Nullable (*wasmtime_func_callback_t)(
    void *_Nullable env, wasmtime_caller_t *caller,
    const wasmtime_val_t *_Nullable args, size_t nargs,
    wasmtime_val_t *_Nullable results, size_t nresults);

/// Frees a host function's environment when its store goes away.
typedef void (*peon_wasmtime_finalizer_t)(void *_Nullable);

// MARK: The function table

/// Every wasmtime function peon-wasm calls, resolved with dlsym. The loader fills all of them or fails,
/// so none is ever NULL in a table it returns.
typedef struct peon_wasmtime_api {
    // Engine and configuration.
    wasm_config_t *_Nonnull (*_Nonnull wasm_config_new)(void);
    wasm_engine_t *_Nullable (*_Nonnull wasm_engine_new_with_config)(wasm_config_t *_Nonnull config);
    void (*_Nonnull wasmtime_config_consume_fuel_set)(wasm_config_t *_Nonnull config, bool enable);
    void (*_Nonnull wasmtime_config_epoch_interruption_set)(wasm_config_t *_Nonnull config, bool enable);
    void (*_Nonnull wasmtime_engine_increment_epoch)(wasm_engine_t *_Nonnull engine);

    // Modules.
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_module_new)(
        wasm_engine_t *_Nonnull engine, const uint8_t *_Nonnull wasm, size_t wasm_len, wasmtime_module_t *_Nullable *_Nonnull out);
    void (*_Nonnull wasmtime_module_delete)(wasmtime_module_t *_Nonnull module);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_module_serialize)(wasmtime_module_t *_Nonnull module, wasm_byte_vec_t *_Nonnull out);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_module_deserialize)(
        wasm_engine_t *_Nonnull engine, const uint8_t *_Nonnull bytes, size_t bytes_len, wasmtime_module_t *_Nullable *_Nonnull out);
    void (*_Nonnull wasmtime_module_imports)(const wasmtime_module_t *_Nonnull module, wasm_importtype_vec_t *_Nonnull out);
    void (*_Nonnull wasmtime_module_exports)(const wasmtime_module_t *_Nonnull module, wasm_exporttype_vec_t *_Nonnull out);

    // Types.
    void (*_Nonnull wasm_importtype_vec_delete)(wasm_importtype_vec_t *_Nonnull vec);
    void (*_Nonnull wasm_exporttype_vec_delete)(wasm_exporttype_vec_t *_Nonnull vec);
    const wasm_byte_vec_t *_Nonnull (*_Nonnull wasm_importtype_module)(const wasm_importtype_t *_Nonnull type);
    const wasm_byte_vec_t *_Nonnull (*_Nonnull wasm_importtype_name)(const wasm_importtype_t *_Nonnull type);
    const wasm_externtype_t *_Nonnull (*_Nonnull wasm_importtype_type)(const wasm_importtype_t *_Nonnull type);
    const wasm_byte_vec_t *_Nonnull (*_Nonnull wasm_exporttype_name)(const wasm_exporttype_t *_Nonnull type);
    const wasm_externtype_t *_Nonnull (*_Nonnull wasm_exporttype_type)(const wasm_exporttype_t *_Nonnull type);
    uint8_t (*_Nonnull wasm_externtype_kind)(const wasm_externtype_t *_Nonnull type);
    const wasm_functype_t *_Nullable (*_Nonnull wasm_externtype_as_functype_const)(const wasm_externtype_t *_Nonnull type);
    const wasm_memorytype_t *_Nullable (*_Nonnull wasm_externtype_as_memorytype_const)(const wasm_externtype_t *_Nonnull type);
    const wasm_valtype_vec_t *_Nonnull (*_Nonnull wasm_functype_params)(const wasm_functype_t *_Nonnull type);
    const wasm_valtype_vec_t *_Nonnull (*_Nonnull wasm_functype_results)(const wasm_functype_t *_Nonnull type);
    uint8_t (*_Nonnull wasm_valtype_kind)(const wasm_valtype_t *_Nonnull type);
    uint64_t (*_Nonnull wasmtime_memorytype_minimum)(const wasm_memorytype_t *_Nonnull type);
    bool (*_Nonnull wasmtime_memorytype_maximum)(const wasm_memorytype_t *_Nonnull type, uint64_t *_Nonnull max);
    wasm_valtype_t *_Nonnull (*_Nonnull wasm_valtype_new)(uint8_t kind);
    void (*_Nonnull wasm_valtype_vec_new)(wasm_valtype_vec_t *_Nonnull out, size_t size, wasm_valtype_t *const _Nullable *_Nullable data);
    wasm_functype_t *_Nonnull (*_Nonnull wasm_functype_new)(wasm_valtype_vec_t *_Nonnull params, wasm_valtype_vec_t *_Nonnull results);
    void (*_Nonnull wasm_functype_delete)(wasm_functype_t *_Nonnull type);
    void (*_Nonnull wasm_byte_vec_delete)(wasm_byte_vec_t *_Nonnull vec);

    // Stores.
    wasmtime_store_t *_Nonnull (*_Nonnull wasmtime_store_new)(
        wasm_engine_t *_Nonnull engine, void *_Nullable data, peon_wasmtime_finalizer_t _Nullable finalizer);
    wasmtime_context_t *_Nonnull (*_Nonnull wasmtime_store_context)(wasmtime_store_t *_Nonnull store);
    void (*_Nonnull wasmtime_store_delete)(wasmtime_store_t *_Nonnull store);
    void (*_Nonnull wasmtime_store_limiter)(
        wasmtime_store_t *_Nonnull store, int64_t memory_size, int64_t table_elements,
        int64_t instances, int64_t tables, int64_t memories);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_context_set_fuel)(wasmtime_context_t *_Nonnull context, uint64_t fuel);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_context_get_fuel)(const wasmtime_context_t *_Nonnull context, uint64_t *_Nonnull fuel);
    void (*_Nonnull wasmtime_context_set_epoch_deadline)(wasmtime_context_t *_Nonnull context, uint64_t ticks_beyond_current);

    // Functions, instances, memories.
    void (*_Nonnull wasmtime_func_new)(
        wasmtime_context_t *_Nonnull store, const wasm_functype_t *_Nonnull type, wasmtime_func_callback_t callback,
        void *_Nullable env, peon_wasmtime_finalizer_t _Nullable finalizer, wasmtime_func_t *_Nonnull out);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_func_call)(
        wasmtime_context_t *_Nonnull store, const wasmtime_func_t *_Nonnull func,
        const wasmtime_val_t *_Nullable args, size_t nargs, wasmtime_val_t *_Nullable results, size_t nresults,
        wasm_trap_t *_Nullable *_Nonnull trap);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_instance_new)(
        wasmtime_context_t *_Nonnull store, const wasmtime_module_t *_Nonnull module,
        const wasmtime_extern_t *_Nullable imports, size_t nimports, wasmtime_instance_t *_Nonnull instance,
        wasm_trap_t *_Nullable *_Nonnull trap);
    bool (*_Nonnull wasmtime_instance_export_get)(
        wasmtime_context_t *_Nonnull store, const wasmtime_instance_t *_Nonnull instance,
        const char *_Nonnull name, size_t name_len, wasmtime_extern_t *_Nonnull item);
    bool (*_Nonnull wasmtime_caller_export_get)(
        wasmtime_caller_t *_Nonnull caller, const char *_Nonnull name, size_t name_len, wasmtime_extern_t *_Nonnull item);
    wasmtime_context_t *_Nonnull (*_Nonnull wasmtime_caller_context)(wasmtime_caller_t *_Nonnull caller);
    uint8_t *_Nullable (*_Nonnull wasmtime_memory_data)(const wasmtime_context_t *_Nonnull store, const wasmtime_memory_t *_Nonnull memory);
    size_t (*_Nonnull wasmtime_memory_data_size)(const wasmtime_context_t *_Nonnull store, const wasmtime_memory_t *_Nonnull memory);

    // Traps and errors.
    wasm_trap_t *_Nonnull (*_Nonnull wasmtime_trap_new)(const char *_Nonnull message, size_t message_len);
    bool (*_Nonnull wasmtime_trap_code)(const wasm_trap_t *_Nonnull trap, uint8_t *_Nonnull code);
    void (*_Nonnull wasm_trap_message)(const wasm_trap_t *_Nonnull trap, wasm_byte_vec_t *_Nonnull out);
    void (*_Nonnull wasm_trap_delete)(wasm_trap_t *_Nonnull trap);
    void (*_Nonnull wasmtime_error_message)(const wasmtime_error_t *_Nonnull error, wasm_byte_vec_t *_Nonnull out);
    void (*_Nonnull wasmtime_error_delete)(wasmtime_error_t *_Nonnull error);
} peon_wasmtime_api;

/// Opens the shared library at `path` and resolves every function of `peon_wasmtime_api`.
///
/// Returns a table that lives until the process exits (the library is never closed: compiled code
/// and signal handlers it installs must outlive every engine), or NULL with a one-line reason in
/// `error` (dlopen's message, or the first missing symbol).
const peon_wasmtime_api *_Nullable peon_wasmtime_open(const char *path, char *error, size_t error_size);

/// The wasmtime version the library was built as, e.g. "50.0.0", found through the version-suffixed
/// symbols wasmtime exports for debuggers (`resolve_vmctx_memory_ptr_<major>_<minor>_<patch>`).
/// Only the majors in [`first_major`, `last_major`] are probed.
///
/// Returns 1 with the version in `out`; 0 when the library has no such symbol; -1 when it cannot be
/// opened, with dlopen's reason in `out`. The library stays loaded (it is never unloaded, see above).
int peon_wasmtime_probe_version(const char *_Nonnull path, unsigned first_major, unsigned last_major,
                                char *_Nonnull out, size_t out_size);

#pragma clang assume_nonnull end

#ifdef __cplusplus
}
#endif

#endif
