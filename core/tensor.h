// Tensor: float32, row-major (NCHW for images), shape + strides over shared Storage, on one Device.
//
// A Tensor is a cheap handle (shared_ptr to TensorImpl): copying it aliases the same data. Views
// (view, slice) share storage; clone() copies. Methods on Tensor never record on the autograd tape;
// the differentiable operations are the free functions of autograd/functions.h (glimpse::reshape,
// glimpse::conv2d, ...). The autograd fields (requires_grad, grad, grad_fn, hooks) live here so
// that every tensor can take part in a graph.
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/hook_handle.h"
#include "core/rng.h"
#include "core/shape.h"
#include "core/storage.h"

namespace glimpse {

class Tensor;
struct Node;  // core/tape.h

// A gradient hook sees the gradient flowing into a tensor during backward. Return an undefined
// Tensor to leave it unchanged, or a tensor of the same shape to replace it.
using GradHook = std::function<Tensor(const Tensor& grad)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;
  Shape shape;
  Shape strides;

  // autograd
  bool requires_grad = false;
  bool retains_grad = false;         // keep .grad on a non-leaf after backward
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaves, or retains_grad)
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (null for leaves)
  std::vector<std::pair<int, GradHook>> hooks;
  int next_hook_id = 0;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (contiguous, fresh storage) ----
  static Tensor empty(const Shape& shape, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  static Tensor scalar(float value) { return full({}, value); }
  static Tensor randn(const Shape& shape, Rng& rng, float mean = 0.f, float stddev = 1.f);
  static Tensor uniform(const Shape& shape, Rng& rng, float lo, float hi);
  static Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.device()); }
  static Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.device()); }

  // ---- inspection ----
  bool defined() const { return static_cast<bool>(impl_); }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape()); }
  Device device() const;
  bool is_contiguous() const;
  std::string str() const;  // "Tensor[2, 3] cpu" (+ values when small)

  // ---- data access (CPU, contiguous) ----
  float* data();
  const float* data() const;
  float item() const;
  float at(std::initializer_list<int64_t> index) const;
  float& at(std::initializer_list<int64_t> index);
  std::vector<float> to_vector() const;

  // ---- views and copies (never recorded on the tape) ----
  Tensor view(Shape shape) const;                  // shares storage; needs contiguous; one dim may be -1
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0, shares storage
  Tensor contiguous() const;                       // this if already contiguous, else a copy
  Tensor clone() const;                            // deep copy, contiguous, no autograd history
  Tensor detach() const;                           // same storage, no autograd history
  Tensor to(Device device) const;                  // copy to another device (this if already there)
  void copy_from(const Tensor& src);               // element-wise copy, shapes must match
  void fill_(float value);
  void add_(const Tensor& other, float alpha = 1.f);  // this += alpha * other (no tape; optimizers, grads)
  void scale_(float s);

  // ---- autograd (implemented in autograd/engine.cpp) ----
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return !impl_ || !impl_->grad_fn; }
  Tensor grad() const;  // undefined until a backward reached this tensor
  void zero_grad();
  void retain_grad();
  // Reverse-mode backward from this tensor. A scalar needs no grad_output; otherwise pass one of
  // the same shape. The tape is freed afterwards unless retain_graph.
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false) const;
  // Hook on the gradient of this tensor (see GradHook); removed when the handle dies.
  [[nodiscard]] HookHandle register_hook(GradHook hook) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  void check_defined(const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

// Checks used by every op: all on the CPU for a CPU kernel, same device for several inputs, shapes.
// A testing aid for the kernel contract (core/dispatch.h): while on, every Tensor::empty comes
// filled with NaN instead of whatever memory held, so a kernel that leaves an element of its output
// unwritten, or reads it before writing it, shows as NaN in a test's result. Off by default;
// process-wide.
void set_poison_empty(bool on);
bool poison_empty();

void check_same_device(const Tensor& a, const Tensor& b, const char* op);
void check_cpu(const Tensor& t, const char* op);
void check_dim(const Tensor& t, int64_t dim, const char* op, const char* what);

}  // namespace glimpse
