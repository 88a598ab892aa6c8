// Resolves the wasmtime C API functions peon-wasm uses from a shared library opened at run time.
#include "CWasmtime.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Every field of peon_wasmtime_api with its symbol name, in declaration order. Each field is a
// function pointer, so the table can be filled as an array of pointers of the same size.
#define PEON_WASMTIME_SYMBOLS(X)                 \
    X(wasm_config_new)                           \
    X(wasm_engine_new_with_config)               \
    X(wasmtime_config_consume_fuel_set)          \
    X(wasmtime_config_epoch_interruption_set)    \
    X(wasmtime_config_wasm_gc_set)               \
    X(wasmtime_config_wasm_exceptions_set)       \
    X(wasmtime_engine_increment_epoch)           \
    X(wasmtime_module_new)                       \
    X(wasmtime_module_delete)                    \
    X(wasmtime_module_serialize)                 \
    X(wasmtime_module_deserialize)               \
    X(wasmtime_module_imports)                   \
    X(wasmtime_module_exports)                   \
    X(wasm_importtype_vec_delete)                \
    X(wasm_exporttype_vec_delete)                \
    X(wasm_importtype_module)                    \
    X(wasm_importtype_name)                      \
    X(wasm_importtype_type)                      \
    X(wasm_exporttype_name)                      \
    X(wasm_exporttype_type)                      \
    X(wasm_externtype_kind)                      \
    X(wasm_externtype_as_functype_const)         \
    X(wasm_externtype_as_memorytype_const)       \
    X(wasm_functype_params)                      \
    X(wasm_functype_results)                     \
    X(wasm_valtype_kind)                         \
    X(wasmtime_memorytype_minimum)               \
    X(wasmtime_memorytype_maximum)               \
    X(wasm_valtype_new)                          \
    X(wasm_valtype_vec_new)                      \
    X(wasm_functype_new)                         \
    X(wasm_functype_delete)                      \
    X(wasm_byte_vec_delete)                      \
    X(wasmtime_store_new)                        \
    X(wasmtime_store_context)                    \
    X(wasmtime_store_delete)                     \
    X(wasmtime_store_limiter)                    \
    X(wasmtime_context_set_fuel)                 \
    X(wasmtime_context_get_fuel)                 \
    X(wasmtime_context_set_epoch_deadline)       \
    X(wasmtime_func_new)                         \
    X(wasmtime_func_call)                        \
    X(wasmtime_instance_new)                     \
    X(wasmtime_instance_export_get)              \
    X(wasmtime_caller_export_get)                \
    X(wasmtime_caller_context)                   \
    X(wasmtime_memory_data)                      \
    X(wasmtime_memory_data_size)                 \
    X(wasmtime_trap_new)                         \
    X(wasmtime_trap_code)                        \
    X(wasm_trap_message)                         \
    X(wasm_trap_delete)                          \
    X(wasmtime_error_message)                    \
    X(wasmtime_error_delete)                     \
    X(wasmtime_component_new)                    \
    X(wasmtime_component_serialize)              \
    X(wasmtime_component_deserialize)            \
    X(wasmtime_component_delete)                 \
    X(wasmtime_component_linker_new)             \
    X(wasmtime_component_linker_root)            \
    X(wasmtime_component_linker_instance_add_instance)  \
    X(wasmtime_component_linker_instance_add_func)  \
    X(wasmtime_component_linker_instance_delete)  \
    X(wasmtime_component_linker_add_wasip2)      \
    X(wasmtime_component_linker_instantiate)     \
    X(wasmtime_component_linker_delete)          \
    X(wasmtime_component_instance_get_export_index)  \
    X(wasmtime_component_export_index_delete)    \
    X(wasmtime_component_instance_get_func)      \
    X(wasmtime_component_func_call)              \
    X(wasmtime_component_type)  \
    X(wasmtime_component_type_delete)  \
    X(wasmtime_component_type_import_count)  \
    X(wasmtime_component_type_import_nth)  \
    X(wasmtime_component_extern_type)  \
    X(wasmtime_component_extern_delete)  \
    X(wasmtime_component_item_delete)  \
    X(wasmtime_component_instance_type_export_count)  \
    X(wasmtime_component_instance_type_export_nth)  \
    X(wasmtime_component_func_type)  \
    X(wasmtime_component_func_type_delete)  \
    X(wasmtime_component_func_type_param_count)  \
    X(wasmtime_component_func_type_param_nth)  \
    X(wasmtime_component_func_type_result)  \
    X(wasmtime_component_valtype_delete)  \
    X(wasmtime_component_list_type_element)  \
    X(wasmtime_component_record_type_field_count)  \
    X(wasmtime_component_record_type_field_nth)  \
    X(wasmtime_component_tuple_type_types_count)  \
    X(wasmtime_component_tuple_type_types_nth)  \
    X(wasmtime_component_variant_type_case_count)  \
    X(wasmtime_component_variant_type_case_nth)  \
    X(wasmtime_component_enum_type_names_count)  \
    X(wasmtime_component_enum_type_names_nth)  \
    X(wasmtime_component_option_type_ty)  \
    X(wasmtime_component_result_type_ok)  \
    X(wasmtime_component_result_type_err)  \
    X(wasmtime_component_flags_type_names_count)  \
    X(wasmtime_component_flags_type_names_nth)  \
    X(wasmtime_component_val_new)                \
    X(wasmtime_component_val_delete)             \
    X(wasmtime_component_vallist_new_uninit)     \
    X(wasmtime_component_valrecord_new)          \
    X(wasmtime_component_valflags_new)          \
    X(wasm_byte_vec_new)                         \
    X(wasmtime_error_new)                        \
    X(wasi_config_new)                           \
    X(wasi_config_delete)                        \
    X(wasi_config_set_argv)                      \
    X(wasi_config_set_env)                       \
    X(wasi_config_set_stdin_bytes)               \
    X(wasi_config_set_stdout_custom)             \
    X(wasi_config_set_stderr_custom)             \
    X(wasmtime_context_set_wasi)

const peon_wasmtime_api *peon_wasmtime_open(const char *path, char *error, size_t error_size) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *reason = dlerror();
        snprintf(error, error_size, "%s", reason != NULL ? reason : "dlopen failed");
        return NULL;
    }
    peon_wasmtime_api *api = calloc(1, sizeof(peon_wasmtime_api));
    if (api == NULL) {
        snprintf(error, error_size, "out of memory");
        dlclose(handle);
        return NULL;
    }
#define PEON_RESOLVE(name)                                                                      \
    {                                                                                            \
        void *symbol = dlsym(handle, #name);                                                     \
        if (symbol == NULL) {                                                                    \
            snprintf(error, error_size, "the library has no function `%s`", #name);              \
            free(api);                                                                           \
            dlclose(handle);                                                                     \
            return NULL;                                                                         \
        }                                                                                        \
        memcpy((void *)&api->name, &symbol, sizeof(symbol));                                     \
    }
    PEON_WASMTIME_SYMBOLS(PEON_RESOLVE)
#undef PEON_RESOLVE
    // The handle stays open for the life of the process (see the header).
    return api;
}

int peon_wasmtime_probe_version(const char *path, unsigned first_major, unsigned last_major,
                                char *out, size_t out_size) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *reason = dlerror();
        snprintf(out, out_size, "%s", reason != NULL ? reason : "dlopen failed");
        return -1;
    }
    char name[96];
    for (unsigned major = first_major; major <= last_major; major++) {
        for (unsigned patch = 0; patch < 32; patch++) {
            snprintf(name, sizeof(name), "resolve_vmctx_memory_ptr_%u_0_%u", major, patch);
            if (dlsym(handle, name) != NULL) {
                snprintf(out, out_size, "%u.0.%u", major, patch);
                return 1;
            }
        }
    }
    // Not closed: unloading a library whose constructors ran is not safe in general, and the caller
    // opens it again right after when it is usable (dlopen then only counts a reference).
    return 0;
}

// The component value layouts (wasmtime 50, 64-bit), as the wheel's ctypes bindings lay them out.
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(wasmtime_component_val_t) == 32, "wasmtime_component_val_t is 32 bytes");
_Static_assert(sizeof(wasmtime_component_valrecord_entry_t) == 48, "a record entry is 48 bytes");
_Static_assert(sizeof(wasmtime_component_valvariant_t) == 24, "a variant is 24 bytes");
_Static_assert(sizeof(wasmtime_component_func_t) == 32, "wasmtime_component_func_t is 32 bytes");
_Static_assert(sizeof(wasmtime_component_instance_t) == 16, "wasmtime_component_instance_t is 16 bytes");
#endif
