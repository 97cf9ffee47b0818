// A subset of C++23 std::expected for C++20 builds. Same names and semantics as the standard for what
// it provides, so code written against it keeps compiling when <expected> takes over; nothing in it
// goes beyond the standard's interface (perplexity/expected.hpp says why the library has its own).
//
// Provided: unexpected, unexpect_t, bad_expected_access, expected<T, E> for object types T (not void),
// with construction from values and unexpected, in-place construction, has_value, operator bool,
// operator* / ->, value (throws bad_expected_access), error, value_or, and_then, transform, or_else,
// transform_error, emplace, swap and equality.
#pragma once

#include <exception>
#include <functional>
#include <type_traits>
#include <utility>
#include <variant>

namespace perplexity {

template <class E>
class unexpected {
  public:
    template <class Err = E>
    requires(!std::is_same_v<std::remove_cvref_t<Err>, unexpected> &&
             !std::is_same_v<std::remove_cvref_t<Err>, std::in_place_t> &&
             std::is_constructible_v<E, Err>) constexpr explicit unexpected(Err&& error)
        : error_(std::forward<Err>(error)) {}

    template <class... Args>
    constexpr explicit unexpected(std::in_place_t, Args&&... args) : error_(std::forward<Args>(args)...) {}

    constexpr const E& error() const& noexcept { return error_; }
    constexpr E& error() & noexcept { return error_; }
    constexpr E&& error() && noexcept { return std::move(error_); }
    constexpr const E&& error() const&& noexcept { return std::move(error_); }

    constexpr void swap(unexpected& other) noexcept(std::is_nothrow_swappable_v<E>) {
        using std::swap;
        swap(error_, other.error_);
    }

    template <class E2>
    friend constexpr bool operator==(const unexpected& lhs, const unexpected<E2>& rhs) {
        return lhs.error() == rhs.error();
    }

  private:
    E error_;
};

template <class E>
unexpected(E) -> unexpected<E>;

struct unexpect_t {
    explicit unexpect_t() = default;
};
inline constexpr unexpect_t unexpect{};

template <class E>
class bad_expected_access;

template <>
class bad_expected_access<void> : public std::exception {
  public:
    const char* what() const noexcept override { return "bad access to expected without a value"; }
};

template <class E>
class bad_expected_access : public bad_expected_access<void> {
  public:
    explicit bad_expected_access(E error) : error_(std::move(error)) {}
    const E& error() const& noexcept { return error_; }
    E& error() & noexcept { return error_; }
    E&& error() && noexcept { return std::move(error_); }

  private:
    E error_;
};

template <class T, class E>
class expected;

namespace detail {
template <class T>
inline constexpr bool is_expected_v = false;
template <class T, class E>
inline constexpr bool is_expected_v<expected<T, E>> = true;

template <class T>
inline constexpr bool is_unexpected_v = false;
template <class E>
inline constexpr bool is_unexpected_v<unexpected<E>> = true;
}  // namespace detail

template <class T, class E>
class expected {
    static_assert(!std::is_void_v<T>, "this C++20 fallback supports object types only");
    static_assert(!std::is_reference_v<T> && !std::is_reference_v<E>);

  public:
    using value_type = T;
    using error_type = E;
    using unexpected_type = unexpected<E>;

    template <class U>
    using rebind = expected<U, error_type>;

    constexpr expected() requires std::is_default_constructible_v<T> : storage_(std::in_place_index<0>) {}

    constexpr expected(const expected&) = default;
    constexpr expected(expected&&) = default;
    constexpr expected& operator=(const expected&) = default;
    constexpr expected& operator=(expected&&) = default;

    template <class U = T>
    requires(!std::is_same_v<std::remove_cvref_t<U>, std::in_place_t> &&
             !std::is_same_v<std::remove_cvref_t<U>, expected> &&
             !std::is_same_v<std::remove_cvref_t<U>, unexpect_t> &&
             !detail::is_unexpected_v<std::remove_cvref_t<U>> &&
             std::is_constructible_v<T, U>) constexpr explicit(!std::is_convertible_v<U, T>)
        expected(U&& value)
        : storage_(std::in_place_index<0>, std::forward<U>(value)) {}

    template <class G>
    requires std::is_constructible_v<E, const G&>
    constexpr explicit(!std::is_convertible_v<const G&, E>) expected(const unexpected<G>& error)
        : storage_(std::in_place_index<1>, error.error()) {}

    template <class G>
    requires std::is_constructible_v<E, G>
    constexpr explicit(!std::is_convertible_v<G, E>) expected(unexpected<G>&& error)
        : storage_(std::in_place_index<1>, std::move(error).error()) {}

    template <class... Args>
    requires std::is_constructible_v<T, Args...>
    constexpr explicit expected(std::in_place_t, Args&&... args)
        : storage_(std::in_place_index<0>, std::forward<Args>(args)...) {}

    template <class... Args>
    requires std::is_constructible_v<E, Args...>
    constexpr explicit expected(unexpect_t, Args&&... args)
        : storage_(std::in_place_index<1>, std::forward<Args>(args)...) {}

    template <class U = T>
    requires(!std::is_same_v<std::remove_cvref_t<U>, expected> &&
             !detail::is_unexpected_v<std::remove_cvref_t<U>> && std::is_constructible_v<T, U> &&
             std::is_assignable_v<T&, U>) constexpr expected&
    operator=(U&& value) {
        if (has_value()) {
            **this = std::forward<U>(value);
        } else {
            storage_.template emplace<0>(std::forward<U>(value));
        }
        return *this;
    }

    template <class G>
    constexpr expected& operator=(const unexpected<G>& error) {
        storage_.template emplace<1>(error.error());
        return *this;
    }

    template <class G>
    constexpr expected& operator=(unexpected<G>&& error) {
        storage_.template emplace<1>(std::move(error).error());
        return *this;
    }

    template <class... Args>
    constexpr T& emplace(Args&&... args) {
        return storage_.template emplace<0>(std::forward<Args>(args)...);
    }

    constexpr void swap(expected& other) noexcept(
        std::is_nothrow_swappable_v<T>&& std::is_nothrow_swappable_v<E>&&
            std::is_nothrow_move_constructible_v<T>&& std::is_nothrow_move_constructible_v<E>) {
        storage_.swap(other.storage_);
    }
    friend constexpr void swap(expected& lhs, expected& rhs) noexcept(noexcept(lhs.swap(rhs))) {
        lhs.swap(rhs);
    }

    constexpr bool has_value() const noexcept { return storage_.index() == 0; }
    constexpr explicit operator bool() const noexcept { return has_value(); }

    constexpr const T* operator->() const noexcept { return std::get_if<0>(&storage_); }
    constexpr T* operator->() noexcept { return std::get_if<0>(&storage_); }
    constexpr const T& operator*() const& noexcept { return *std::get_if<0>(&storage_); }
    constexpr T& operator*() & noexcept { return *std::get_if<0>(&storage_); }
    constexpr T&& operator*() && noexcept { return std::move(*std::get_if<0>(&storage_)); }
    constexpr const T&& operator*() const&& noexcept { return std::move(*std::get_if<0>(&storage_)); }

    constexpr const T& value() const& {
        throw_if_error();
        return **this;
    }
    constexpr T& value() & {
        throw_if_error();
        return **this;
    }
    constexpr T&& value() && {
        throw_if_error();
        return std::move(**this);
    }

    constexpr const E& error() const& noexcept { return *std::get_if<1>(&storage_); }
    constexpr E& error() & noexcept { return *std::get_if<1>(&storage_); }
    constexpr E&& error() && noexcept { return std::move(*std::get_if<1>(&storage_)); }

    template <class U>
    constexpr T value_or(U&& fallback) const& {
        return has_value() ? **this : static_cast<T>(std::forward<U>(fallback));
    }
    template <class U>
    constexpr T value_or(U&& fallback) && {
        return has_value() ? std::move(**this) : static_cast<T>(std::forward<U>(fallback));
    }

    template <class F>
    constexpr auto and_then(F&& f) & {
        return and_then_impl(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto and_then(F&& f) const& {
        return and_then_impl(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto and_then(F&& f) && {
        return and_then_impl(std::move(*this), std::forward<F>(f));
    }

    template <class F>
    constexpr auto transform(F&& f) & {
        return transform_impl(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) const& {
        return transform_impl(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) && {
        return transform_impl(std::move(*this), std::forward<F>(f));
    }

    template <class F>
    constexpr auto or_else(F&& f) & {
        return or_else_impl(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) const& {
        return or_else_impl(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) && {
        return or_else_impl(std::move(*this), std::forward<F>(f));
    }

    template <class F>
    constexpr auto transform_error(F&& f) & {
        return transform_error_impl(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) const& {
        return transform_error_impl(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) && {
        return transform_error_impl(std::move(*this), std::forward<F>(f));
    }

    template <class T2, class E2>
    friend constexpr bool operator==(const expected& lhs, const expected<T2, E2>& rhs) {
        if (lhs.has_value() != rhs.has_value()) {
            return false;
        }
        return lhs.has_value() ? *lhs == *rhs : lhs.error() == rhs.error();
    }
    template <class T2>
    requires(!detail::is_expected_v<T2> && !detail::is_unexpected_v<T2>) friend constexpr bool operator==(
        const expected& lhs, const T2& value) {
        return lhs.has_value() && *lhs == value;
    }
    template <class E2>
    friend constexpr bool operator==(const expected& lhs, const unexpected<E2>& error) {
        return !lhs.has_value() && lhs.error() == error.error();
    }

  private:
    constexpr void throw_if_error() const {
        if (!has_value()) {
            throw bad_expected_access<E>(error());
        }
    }

    template <class Self, class F>
    static constexpr auto and_then_impl(Self&& self, F&& f) {
        using Result = std::remove_cvref_t<std::invoke_result_t<F, decltype(*std::forward<Self>(self))>>;
        static_assert(detail::is_expected_v<Result>, "and_then needs a function returning an expected");
        if (self.has_value()) {
            return std::invoke(std::forward<F>(f), *std::forward<Self>(self));
        }
        return Result(unexpect, std::forward<Self>(self).error());
    }

    template <class Self, class F>
    static constexpr auto transform_impl(Self&& self, F&& f) {
        using U = std::remove_cv_t<std::invoke_result_t<F, decltype(*std::forward<Self>(self))>>;
        using Result = expected<U, E>;
        if (self.has_value()) {
            return Result(std::in_place, std::invoke(std::forward<F>(f), *std::forward<Self>(self)));
        }
        return Result(unexpect, std::forward<Self>(self).error());
    }

    template <class Self, class F>
    static constexpr auto or_else_impl(Self&& self, F&& f) {
        using Result =
            std::remove_cvref_t<std::invoke_result_t<F, decltype(std::forward<Self>(self).error())>>;
        static_assert(detail::is_expected_v<Result>, "or_else needs a function returning an expected");
        if (self.has_value()) {
            return Result(std::in_place, *std::forward<Self>(self));
        }
        return std::invoke(std::forward<F>(f), std::forward<Self>(self).error());
    }

    template <class Self, class F>
    static constexpr auto transform_error_impl(Self&& self, F&& f) {
        using G = std::remove_cv_t<std::invoke_result_t<F, decltype(std::forward<Self>(self).error())>>;
        using Result = expected<T, G>;
        if (self.has_value()) {
            return Result(std::in_place, *std::forward<Self>(self));
        }
        return Result(unexpect, std::invoke(std::forward<F>(f), std::forward<Self>(self).error()));
    }

    std::variant<T, E> storage_;
};

}  // namespace perplexity
