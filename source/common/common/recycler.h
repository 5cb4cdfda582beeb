#pragma once

#include <cstddef>
#include <new>

namespace tern {
namespace common {

// Per-thread free lists for the few objects every proxied request creates and destroys
// (streams, header maps, timers, filters). glibc's tcache costs about 140 instructions per
// malloc/free pair on these paths; popping a free list costs about 10, which callgrind
// counted as ~1,300 instructions per HTTP/1 request (docs/design.md, "HTTP performance:
// what made it cheaper"). A thread keeps at most kCap objects of a type: the memory is reused, not
// hoarded. Objects may be freed on another thread than the one that made them (raw_epoll
// moves shards between pool threads): they join that thread's list.
//
// Sanitizer builds skip the lists so that use-after-free stays visible to ASan.
#if defined(__SANITIZE_ADDRESS__)
#define TERN_RECYCLER_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TERN_RECYCLER_DISABLED 1
#endif
#endif

template <class T, size_t kCap = 64> class FreeList {
public:
  static void* allocate(size_t n) {
#ifndef TERN_RECYCLER_DISABLED
    if (n == sizeof(T)) {
      List& l = list_;
      if (Node* node = l.head) {
        l.head = node->next;
        l.count--;
        return node;
      }
    }
#endif
    return ::operator new(n);
  }

  static void release(void* p, size_t n) {
#ifndef TERN_RECYCLER_DISABLED
    if (n == sizeof(T)) {
      List& l = list_;
      if (l.count < kCap) {
        Node* node = static_cast<Node*>(p);
        node->next = l.head;
        l.head = node;
        l.count++;
        return;
      }
    }
#endif
    ::operator delete(p);
  }

private:
  struct Node {
    Node* next;
  };
  static_assert(sizeof(T) >= sizeof(Node), "too small to recycle");
  struct List {
    Node* head{nullptr};
    size_t count{0};
    ~List() {
      while (head) {
        Node* next = head->next;
        ::operator delete(head);
        head = next;
      }
    }
  };
  static thread_local List list_;
};

template <class T, size_t kCap> thread_local typename FreeList<T, kCap>::List FreeList<T, kCap>::list_;

// Class-level operator new/delete drawing on FreeList<Class>; put it in the class body.
// Subclasses of a different size fall through to the global allocator.
#define TERN_RECYCLED(Class)                                                                 \
  static void* operator new(size_t n) { return ::tern::common::FreeList<Class>::allocate(n); } \
  static void operator delete(void* p, size_t n) { ::tern::common::FreeList<Class>::release(p, n); }

// A std allocator on the same lists, for std::allocate_shared (one block holding the
// control block and the object) and node-based containers.
template <class T> struct RecyclingAllocator {
  using value_type = T;
  RecyclingAllocator() = default;
  template <class U> RecyclingAllocator(const RecyclingAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(FreeList<T>::allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { FreeList<T>::release(p, n * sizeof(T)); }
  template <class U> bool operator==(const RecyclingAllocator<U>&) const { return true; }
  template <class U> bool operator!=(const RecyclingAllocator<U>&) const { return false; }
};

} // namespace common
} // namespace tern
