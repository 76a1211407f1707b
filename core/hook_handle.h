// HookHandle: RAII owner of one registered hook. Destroying it (or calling remove()) unregisters
// the hook, so a hook can never outlive the scope that installed it -- even on an exception.
#pragma once
#include <functional>
#include <utility>

namespace glimpse {

class HookHandle {
 public:
  HookHandle() = default;
  explicit HookHandle(std::function<void()> remover) : remover_(std::move(remover)) {}
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  HookHandle(HookHandle&& o) noexcept : remover_(std::exchange(o.remover_, nullptr)) {}
  HookHandle& operator=(HookHandle&& o) noexcept {
    if (this != &o) {
      remove();
      remover_ = std::exchange(o.remover_, nullptr);
    }
    return *this;
  }
  ~HookHandle() { remove(); }

  void remove() {
    if (remover_) std::exchange(remover_, nullptr)();
  }
  bool active() const { return static_cast<bool>(remover_); }

 private:
  std::function<void()> remover_;
};

}  // namespace glimpse
