/*
 * abi_assert.h - the compile-time checks shared by the ABI layout tests
 * (abi_layout.c, abi_pager_layout.c): an assertion, a type test, and the
 * offset, order and field-type checks built on them, in C11 and in C++ (the
 * layout files are compiled as both). No emm header; no locking.
 */
#ifndef EMM_ABI_ASSERT_H
#define EMM_ABI_ASSERT_H

#include <stddef.h>

#ifdef __cplusplus
#include <type_traits>
#define ABI_ASSERT(e, what) static_assert(e, what)
#define ABI_TYPE_IS(expr, T) (std::is_same<decltype(expr), T>::value)
#else
#define ABI_ASSERT(e, what) _Static_assert(e, what)
#define ABI_TYPE_IS(expr, T) _Generic((expr), T: 1, default: 0)
#endif

/* field sits at byte off */
#define ABI_AT(type, field, off)                                                              \
    ABI_ASSERT(offsetof(struct type, field) == (off), #type "." #field " moved")
/* a before b (holds on every ABI) */
#define ABI_BEFORE(type, a, b)                                                                \
    ABI_ASSERT(offsetof(struct type, a) < offsetof(struct type, b),                           \
               #type ": " #a " must come before " #b)
/* field has type T */
#define ABI_FIELD(type, field, T)                                                             \
    ABI_ASSERT(ABI_TYPE_IS(((struct type *)0)->field, T), #type "." #field " changed type")

#endif
