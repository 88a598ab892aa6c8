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
typedef struct wasi_config_t wasi_config_t;
typedef struct wasmtime_component_t wasmtime_component_t;
typedef struct wasmtime_component_linker_t wasmtime_component_linker_t;
typedef struct wasmtime_component_linker_instance_t wasmtime_component_linker_instance_t;
typedef struct wasmtime_component_export_index_t wasmtime_component_export_index_t;
typedef struct wasmtime_component_func_type_t wasmtime_component_func_type_t;
typedef struct wasmtime_component_type_t wasmtime_component_type_t;
typedef struct wasmtime_component_extern_t wasmtime_component_extern_t;
typedef struct wasmtime_component_instance_type_t wasmtime_component_instance_type_t;
typedef struct wasmtime_component_list_type_t wasmtime_component_list_type_t;
typedef struct wasmtime_component_record_type_t wasmtime_component_record_type_t;
typedef struct wasmtime_component_tuple_type_t wasmtime_component_tuple_type_t;
typedef struct wasmtime_component_variant_type_t wasmtime_component_variant_type_t;
typedef struct wasmtime_component_enum_type_t wasmtime_component_enum_type_t;
typedef struct wasmtime_component_option_type_t wasmtime_component_option_type_t;
typedef struct wasmtime_component_result_type_t wasmtime_component_result_type_t;
typedef struct wasmtime_component_flags_type_t wasmtime_component_flags_type_t;

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


// MARK: Component Model values (wasmtime/component/val.h; layouts checked against the wheel's _bindings.py)

/// `wasmtime_component_valkind_t` values (the tag of a `wasmtime_component_val_t`).
enum {
    PEON_COMPONENT_BOOL = 0,
    PEON_COMPONENT_S8 = 1,
    PEON_COMPONENT_U8 = 2,
    PEON_COMPONENT_S16 = 3,
    PEON_COMPONENT_U16 = 4,
    PEON_COMPONENT_S32 = 5,
    PEON_COMPONENT_U32 = 6,
    PEON_COMPONENT_S64 = 7,
    PEON_COMPONENT_U64 = 8,
    PEON_COMPONENT_F32 = 9,
    PEON_COMPONENT_F64 = 10,
    PEON_COMPONENT_CHAR = 11,
    PEON_COMPONENT_STRING = 12,
    PEON_COMPONENT_LIST = 13,
    PEON_COMPONENT_RECORD = 14,
    PEON_COMPONENT_TUPLE = 15,
    PEON_COMPONENT_VARIANT = 16,
    PEON_COMPONENT_ENUM = 17,
    PEON_COMPONENT_OPTION = 18,
    PEON_COMPONENT_RESULT = 19,
    PEON_COMPONENT_FLAGS = 20,
};

typedef struct wasmtime_component_val_t wasmtime_component_val_t;
typedef struct wasmtime_component_valrecord_entry_t wasmtime_component_valrecord_entry_t;

/// A list or tuple of values: a length and an owned array (16 bytes).
typedef struct wasmtime_component_vallist_t {
    size_t size;
    wasmtime_component_val_t *_Nullable data;
} wasmtime_component_vallist_t;

/// A record's fields: a length and an owned array of named values (16 bytes).
typedef struct wasmtime_component_valrecord_t {
    size_t size;
    wasmtime_component_valrecord_entry_t *_Nullable data;
} wasmtime_component_valrecord_t;

/// Set flags: a length and an owned array of names (16 bytes).
typedef struct wasmtime_component_valflags_t {
    size_t size;
    wasm_byte_vec_t *_Nullable data;
} wasmtime_component_valflags_t;

/// A variant case: its name and an owned, boxed payload or NULL (24 bytes).
typedef struct wasmtime_component_valvariant_t {
    wasm_byte_vec_t discriminant;
    wasmtime_component_val_t *_Nullable val;
} wasmtime_component_valvariant_t;

/// A result: ok or error, and an owned, boxed payload or NULL (16 bytes).
typedef struct wasmtime_component_valresult_t {
    bool is_ok;
    wasmtime_component_val_t *_Nullable val;
} wasmtime_component_valresult_t;

/// A component value: a kind tag, then a union at offset 8; 32 bytes.
struct wasmtime_component_val_t {
    uint8_t kind;
    union {
        bool boolean;
        int8_t s8;
        uint8_t u8;
        int16_t s16;
        uint16_t u16;
        int32_t s32;
        uint32_t u32;
        int64_t s64;
        uint64_t u64;
        float f32;
        double f64;
        uint32_t character;
        wasm_byte_vec_t string;
        wasmtime_component_vallist_t list;
        wasmtime_component_valrecord_t record;
        wasmtime_component_vallist_t tuple;
        wasmtime_component_valvariant_t variant;
        wasm_byte_vec_t enumeration;
        wasmtime_component_val_t *_Nullable option;
        wasmtime_component_valresult_t result;
        wasmtime_component_valflags_t flags;
        peon_wasmtime_handle_storage storage;
    } of;
};

/// One field of a record value: its name, then the value (48 bytes).
struct wasmtime_component_valrecord_entry_t {
    wasm_byte_vec_t name;
    wasmtime_component_val_t val;
};

/// A component instance in a store: 16 bytes.
typedef struct wasmtime_component_instance_t {
    uint64_t store_id;
    uint32_t private_index;
} wasmtime_component_instance_t;

/// A component function in a store: 32 bytes.
typedef struct wasmtime_component_func_t {
    struct {
        uint64_t store_id;
        uint32_t private1;
    } inner;
    uint32_t private2;
    void *_Nullable private3;
} wasmtime_component_func_t;

/// A host function for a component import: returns NULL on success or an owned error that ends the
/// guest's call. `args` belong to wasmtime; `results` are written by the callee and taken by wasmtime.
typedef wasmtime_error_t *_Nullable (*peon_component_callback_t)(
    void *_Nullable env, wasmtime_context_t *context, const wasmtime_component_func_type_t *type,
    wasmtime_component_val_t *_Nullable args, size_t nargs,
    wasmtime_component_val_t *_Nullable results, size_t nresults);

// MARK: Component Model types (wasmtime/component/types/*.h of wasmtime 50; layouts checked against the
// wheel's _bindings.py: a valtype is a kind byte and a union of pointers at offset 8, 16 bytes; an item
// is a kind byte and a union at offset 8 that holds a pointer or a valtype, 24 bytes)

/// `wasmtime_component_valtype_kind_t` values.
enum {
    PEON_VALTYPE_BOOL = 0,
    PEON_VALTYPE_S8 = 1,
    PEON_VALTYPE_S16 = 2,
    PEON_VALTYPE_S32 = 3,
    PEON_VALTYPE_S64 = 4,
    PEON_VALTYPE_U8 = 5,
    PEON_VALTYPE_U16 = 6,
    PEON_VALTYPE_U32 = 7,
    PEON_VALTYPE_U64 = 8,
    PEON_VALTYPE_F32 = 9,
    PEON_VALTYPE_F64 = 10,
    PEON_VALTYPE_CHAR = 11,
    PEON_VALTYPE_STRING = 12,
    PEON_VALTYPE_LIST = 13,
    PEON_VALTYPE_RECORD = 14,
    PEON_VALTYPE_TUPLE = 15,
    PEON_VALTYPE_VARIANT = 16,
    PEON_VALTYPE_ENUM = 17,
    PEON_VALTYPE_OPTION = 18,
    PEON_VALTYPE_RESULT = 19,
    PEON_VALTYPE_FLAGS = 20,
};

/// `wasmtime_component_item_kind_t` values.
enum {
    PEON_ITEM_COMPONENT = 0,
    PEON_ITEM_COMPONENT_INSTANCE = 1,
    PEON_ITEM_MODULE = 2,
    PEON_ITEM_COMPONENT_FUNC = 3,
    PEON_ITEM_RESOURCE = 4,
    PEON_ITEM_CORE_FUNC = 5,
    PEON_ITEM_TYPE = 6,
};

/// `wasmtime_component_valtype_t`: the kind, then one owned pointer to the compound type's details
/// (unused for scalars and strings). Deleted with `wasmtime_component_valtype_delete`.
typedef struct wasmtime_component_valtype_t {
    uint8_t kind;
    void *_Nullable of;
} wasmtime_component_valtype_t;

/// `wasmtime_component_item_t`: what an import or export is. `pointer` is the owned type of a
/// component, instance, module, function or resource; `type` the valtype of a type item. Deleted with
/// `wasmtime_component_item_delete`.
typedef struct wasmtime_component_item_t {
    uint8_t kind;
    union {
        void *_Nullable pointer;
        wasmtime_component_valtype_t type;
    } of;
} wasmtime_component_item_t;

/// A WASI output sink: returns the bytes taken, or a negated errno.
typedef ptrdiff_t (*peon_wasi_output_t)(void *_Nullable data, const uint8_t *_Nullable bytes, size_t count);

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
    void (*_Nonnull wasmtime_config_wasm_gc_set)(wasm_config_t *_Nonnull config, bool enable);
    void (*_Nonnull wasmtime_config_wasm_exceptions_set)(wasm_config_t *_Nonnull config, bool enable);
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

    // Components (the Component Model) and WASI preview 2.
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_component_new)(
        wasm_engine_t *_Nonnull engine, const uint8_t *_Nonnull bytes, size_t bytes_len, wasmtime_component_t *_Nullable *_Nonnull out);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_component_serialize)(const wasmtime_component_t *_Nonnull component, wasm_byte_vec_t *_Nonnull out);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_component_deserialize)(
        wasm_engine_t *_Nonnull engine, const uint8_t *_Nonnull bytes, size_t bytes_len, wasmtime_component_t *_Nullable *_Nonnull out);
    void (*_Nonnull wasmtime_component_delete)(wasmtime_component_t *_Nonnull component);
    wasmtime_component_linker_t *_Nonnull (*_Nonnull wasmtime_component_linker_new)(wasm_engine_t *_Nonnull engine);
    wasmtime_component_linker_instance_t *_Nonnull (*_Nonnull wasmtime_component_linker_root)(wasmtime_component_linker_t *_Nonnull linker);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_component_linker_instance_add_instance)(
        wasmtime_component_linker_instance_t *_Nonnull instance, const char *_Nonnull name, size_t name_len,
        wasmtime_component_linker_instance_t *_Nullable *_Nonnull out);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_component_linker_instance_add_func)(
        wasmtime_component_linker_instance_t *_Nonnull instance, const char *_Nonnull name, size_t name_len,
        peon_component_callback_t _Nonnull callback, void *_Nullable data, peon_wasmtime_finalizer_t _Nullable finalizer);
    void (*_Nonnull wasmtime_component_linker_instance_delete)(wasmtime_component_linker_instance_t *_Nonnull instance);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_component_linker_add_wasip2)(wasmtime_component_linker_t *_Nonnull linker);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_component_linker_instantiate)(
        const wasmtime_component_linker_t *_Nonnull linker, wasmtime_context_t *_Nonnull context,
        const wasmtime_component_t *_Nonnull component, wasmtime_component_instance_t *_Nonnull out);
    void (*_Nonnull wasmtime_component_linker_delete)(wasmtime_component_linker_t *_Nonnull linker);
    wasmtime_component_export_index_t *_Nullable (*_Nonnull wasmtime_component_instance_get_export_index)(
        const wasmtime_component_instance_t *_Nonnull instance, wasmtime_context_t *_Nonnull context,
        const wasmtime_component_export_index_t *_Nullable parent, const char *_Nonnull name, size_t name_len);
    void (*_Nonnull wasmtime_component_export_index_delete)(wasmtime_component_export_index_t *_Nonnull index);
    bool (*_Nonnull wasmtime_component_instance_get_func)(
        const wasmtime_component_instance_t *_Nonnull instance, wasmtime_context_t *_Nonnull context,
        const wasmtime_component_export_index_t *_Nonnull index, wasmtime_component_func_t *_Nonnull out);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_component_func_call)(
        const wasmtime_component_func_t *_Nonnull func, wasmtime_context_t *_Nonnull context,
        const wasmtime_component_val_t *_Nullable args, size_t nargs, wasmtime_component_val_t *_Nullable results, size_t nresults);
    wasmtime_component_type_t *_Nonnull (*_Nonnull wasmtime_component_type)(const wasmtime_component_t *_Nonnull component);
    void (*_Nonnull wasmtime_component_type_delete)(wasmtime_component_type_t *_Nonnull type);
    size_t (*_Nonnull wasmtime_component_type_import_count)(
        const wasmtime_component_type_t *_Nonnull type, const wasm_engine_t *_Nonnull engine);
    bool (*_Nonnull wasmtime_component_type_import_nth)(
        const wasmtime_component_type_t *_Nonnull type, const wasm_engine_t *_Nonnull engine, size_t nth,
        const char *_Nullable *_Nonnull name, size_t *_Nonnull name_len, wasmtime_component_extern_t *_Nullable *_Nonnull out);
    void (*_Nonnull wasmtime_component_extern_type)(const wasmtime_component_extern_t *_Nonnull item, wasmtime_component_item_t *_Nonnull out);
    void (*_Nonnull wasmtime_component_extern_delete)(wasmtime_component_extern_t *_Nonnull item);
    void (*_Nonnull wasmtime_component_item_delete)(wasmtime_component_item_t *_Nonnull item);
    size_t (*_Nonnull wasmtime_component_instance_type_export_count)(
        const wasmtime_component_instance_type_t *_Nonnull type, const wasm_engine_t *_Nonnull engine);
    bool (*_Nonnull wasmtime_component_instance_type_export_nth)(
        const wasmtime_component_instance_type_t *_Nonnull type, const wasm_engine_t *_Nonnull engine, size_t nth,
        const char *_Nullable *_Nonnull name, size_t *_Nonnull name_len, wasmtime_component_extern_t *_Nullable *_Nonnull out);
    /// The type of a function a component exports (owned; deleted with `wasmtime_component_func_type_delete`).
    wasmtime_component_func_type_t *_Nonnull (*_Nonnull wasmtime_component_func_type)(
        const wasmtime_component_func_t *_Nonnull func, wasmtime_context_t *_Nonnull context);
    void (*_Nonnull wasmtime_component_func_type_delete)(wasmtime_component_func_type_t *_Nonnull type);
    size_t (*_Nonnull wasmtime_component_func_type_param_count)(const wasmtime_component_func_type_t *_Nonnull type);
    bool (*_Nonnull wasmtime_component_func_type_param_nth)(
        const wasmtime_component_func_type_t *_Nonnull type, size_t nth, const char *_Nullable *_Nonnull name,
        size_t *_Nonnull name_len, wasmtime_component_valtype_t *_Nonnull out);
    bool (*_Nonnull wasmtime_component_func_type_result)(
        const wasmtime_component_func_type_t *_Nonnull type, wasmtime_component_valtype_t *_Nonnull out);
    void (*_Nonnull wasmtime_component_valtype_delete)(wasmtime_component_valtype_t *_Nonnull type);
    void (*_Nonnull wasmtime_component_list_type_element)(
        const wasmtime_component_list_type_t *_Nonnull type, wasmtime_component_valtype_t *_Nonnull out);
    size_t (*_Nonnull wasmtime_component_record_type_field_count)(const wasmtime_component_record_type_t *_Nonnull type);
    bool (*_Nonnull wasmtime_component_record_type_field_nth)(
        const wasmtime_component_record_type_t *_Nonnull type, size_t nth, const char *_Nullable *_Nonnull name,
        size_t *_Nonnull name_len, wasmtime_component_valtype_t *_Nonnull out);
    size_t (*_Nonnull wasmtime_component_tuple_type_types_count)(const wasmtime_component_tuple_type_t *_Nonnull type);
    bool (*_Nonnull wasmtime_component_tuple_type_types_nth)(
        const wasmtime_component_tuple_type_t *_Nonnull type, size_t nth, wasmtime_component_valtype_t *_Nonnull out);
    size_t (*_Nonnull wasmtime_component_variant_type_case_count)(const wasmtime_component_variant_type_t *_Nonnull type);
    bool (*_Nonnull wasmtime_component_variant_type_case_nth)(
        const wasmtime_component_variant_type_t *_Nonnull type, size_t nth, const char *_Nullable *_Nonnull name,
        size_t *_Nonnull name_len, bool *_Nonnull has_payload, wasmtime_component_valtype_t *_Nonnull payload);
    size_t (*_Nonnull wasmtime_component_enum_type_names_count)(const wasmtime_component_enum_type_t *_Nonnull type);
    bool (*_Nonnull wasmtime_component_enum_type_names_nth)(
        const wasmtime_component_enum_type_t *_Nonnull type, size_t nth, const char *_Nullable *_Nonnull name, size_t *_Nonnull name_len);
    void (*_Nonnull wasmtime_component_option_type_ty)(
        const wasmtime_component_option_type_t *_Nonnull type, wasmtime_component_valtype_t *_Nonnull out);
    bool (*_Nonnull wasmtime_component_result_type_ok)(
        const wasmtime_component_result_type_t *_Nonnull type, wasmtime_component_valtype_t *_Nonnull out);
    bool (*_Nonnull wasmtime_component_result_type_err)(
        const wasmtime_component_result_type_t *_Nonnull type, wasmtime_component_valtype_t *_Nonnull out);
    size_t (*_Nonnull wasmtime_component_flags_type_names_count)(const wasmtime_component_flags_type_t *_Nonnull type);
    bool (*_Nonnull wasmtime_component_flags_type_names_nth)(
        const wasmtime_component_flags_type_t *_Nonnull type, size_t nth, const char *_Nullable *_Nonnull name, size_t *_Nonnull name_len);
    wasmtime_component_val_t *_Nonnull (*_Nonnull wasmtime_component_val_new)(wasmtime_component_val_t *_Nonnull value);
    void (*_Nonnull wasmtime_component_val_delete)(wasmtime_component_val_t *_Nonnull value);
    /// A list of `size` values to be filled in place (each element must be written before wasmtime reads it).
    void (*_Nonnull wasmtime_component_vallist_new_uninit)(wasmtime_component_vallist_t *_Nonnull out, size_t size);
    void (*_Nonnull wasmtime_component_valrecord_new)(
        wasmtime_component_valrecord_t *_Nonnull out, size_t size, const wasmtime_component_valrecord_entry_t *_Nullable data);
    void (*_Nonnull wasmtime_component_valflags_new)(
        wasmtime_component_valflags_t *_Nonnull out, size_t size, const wasm_byte_vec_t *_Nullable data);
    void (*_Nonnull wasm_byte_vec_new)(wasm_byte_vec_t *_Nonnull out, size_t size, const uint8_t *_Nullable data);
    wasmtime_error_t *_Nonnull (*_Nonnull wasmtime_error_new)(const char *_Nonnull message);
    wasi_config_t *_Nonnull (*_Nonnull wasi_config_new)(void);
    void (*_Nonnull wasi_config_delete)(wasi_config_t *_Nonnull config);
    bool (*_Nonnull wasi_config_set_argv)(wasi_config_t *_Nonnull config, size_t argc, const char *_Nonnull const *_Nullable argv);
    bool (*_Nonnull wasi_config_set_env)(
        wasi_config_t *_Nonnull config, size_t count, const char *_Nonnull const *_Nullable names, const char *_Nonnull const *_Nullable values);
    void (*_Nonnull wasi_config_set_stdin_bytes)(wasi_config_t *_Nonnull config, wasm_byte_vec_t *_Nonnull bytes);
    void (*_Nonnull wasi_config_set_stdout_custom)(
        wasi_config_t *_Nonnull config, peon_wasi_output_t _Nonnull callback, void *_Nullable data, peon_wasmtime_finalizer_t _Nullable finalizer);
    void (*_Nonnull wasi_config_set_stderr_custom)(
        wasi_config_t *_Nonnull config, peon_wasi_output_t _Nonnull callback, void *_Nullable data, peon_wasmtime_finalizer_t _Nullable finalizer);
    wasmtime_error_t *_Nullable (*_Nonnull wasmtime_context_set_wasi)(wasmtime_context_t *_Nonnull context, wasi_config_t *_Nonnull config);
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
