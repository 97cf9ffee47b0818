// make_idempotency_key, kept out of <perplexity/idempotency.hpp> with separate compilation because the key
// comes from OpenSSL's generator.
#pragma once

#include <perplexity/detail/config.hpp>
#include <perplexity/detail/uuid.hpp>
#include <perplexity/idempotency.hpp>

#include <string>

namespace perplexity {

PERPLEXITY_ASYNC_DECL std::string make_idempotency_key() {
    return detail::uuid_v4();
}

}  // namespace perplexity
