package client

import (
	"context"
	"fmt"
	"iter"
	"net/url"
	"strconv"
)

// Page is one page of a list: the API's {"items":[…],"next_cursor":""}.
// An empty NextCursor means the list is complete.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// ListOptions selects a page: Limit (server default when zero, at most
// 500) items after Cursor (a previous page's NextCursor).
type ListOptions struct {
	Limit  int
	Cursor string
}

func (o ListOptions) values() url.Values {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

// PageFunc fetches the page that starts at cursor ("" for the first).
type PageFunc[T any] func(ctx context.Context, cursor string) (Page[T], error)

// All yields every item of a list, following next_cursor until the end.
// It stops at the first error, which it yields with a zero item.
func All[T any](ctx context.Context, fetch PageFunc[T]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		cursor := ""
		for {
			page, err := fetch(ctx, cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range page.Items {
				if !yield(item, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			if page.NextCursor == cursor {
				// A server answering the same cursor again would loop
				// forever; say so instead.
				var zero T
				yield(zero, fmt.Errorf("following cursor %q: %w: the server repeated it", cursor, ErrInvalidResponse))
				return
			}
			cursor = page.NextCursor
		}
	}
}

// Collect gathers every item of a list into one page whose NextCursor is
// empty, the shape `nkudo get -o json` prints.
func Collect[T any](ctx context.Context, fetch PageFunc[T]) (Page[T], error) {
	out := Page[T]{Items: []T{}}
	for item, err := range All(ctx, fetch) {
		if err != nil {
			return Page[T]{}, err
		}
		out.Items = append(out.Items, item)
	}
	return out, nil
}
