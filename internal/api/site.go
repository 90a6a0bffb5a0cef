package api

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

type createSiteRequest struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	NetBird     *netbirdSettings `json:"netbird"`
}

// updateSiteRequest uses pointers: an absent field is left unchanged.
type updateSiteRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	NetBird     *struct {
		Enabled *bool     `json:"enabled"`
		Groups  *[]string `json:"groups"`
	} `json:"netbird"`
}

func (a *API) createSite(c *gin.Context) {
	var req createSiteRequest
	if err := decodeJSON(c, &req, false); err != nil {
		a.writeError(c, err)
		return
	}
	if err := checkName("name", req.Name); err != nil {
		a.writeError(c, err)
		return
	}
	if err := checkDescription(req.Description); err != nil {
		a.writeError(c, err)
		return
	}
	now := a.now().UTC()
	s := store.Site{
		ID:          store.NewID(),
		TenantID:    tenantOf(c),
		Name:        req.Name,
		Description: req.Description,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if req.NetBird != nil {
		if err := checkGroups(req.NetBird.Groups); err != nil {
			a.writeError(c, err)
			return
		}
		s.NetBirdEnabled = req.NetBird.Enabled
		s.NetBirdGroups = req.NetBird.Groups
	}
	setAuditTarget(c, s.ID.String())
	if err := a.store.CreateSite(c.Request.Context(), s); err != nil {
		a.writeError(c, fmt.Errorf("creating site: %w", err))
		return
	}
	c.JSON(http.StatusCreated, viewSite(s))
}

func (a *API) listSites(c *gin.Context) {
	page, err := parsePage(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	rows, more, err := a.store.ListSites(c.Request.Context(), tenantOf(c), page)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing sites: %w", err))
		return
	}
	c.JSON(http.StatusOK, newList(rows, more, func(s store.Site) uuid.UUID { return s.ID }, viewSite))
}

func (a *API) getSite(c *gin.Context) {
	id, err := pathID(c, "site")
	if err != nil {
		a.writeError(c, err)
		return
	}
	s, err := a.store.GetSite(c.Request.Context(), tenantOf(c), id)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting site %s: %w", id, err))
		return
	}
	v := viewSite(s)
	a.siteNetBirdState(c.Request.Context(), s, &v.NetBird)
	c.JSON(http.StatusOK, v)
}

func (a *API) updateSite(c *gin.Context) {
	id, err := pathID(c, "site")
	if err != nil {
		a.writeError(c, err)
		return
	}
	var req updateSiteRequest
	if err := decodeJSON(c, &req, false); err != nil {
		a.writeError(c, err)
		return
	}
	var patch store.SitePatch
	if req.Name != nil {
		if err := checkName("name", *req.Name); err != nil {
			a.writeError(c, err)
			return
		}
		patch.Name = req.Name
	}
	if req.Description != nil {
		if err := checkDescription(*req.Description); err != nil {
			a.writeError(c, err)
			return
		}
		patch.Description = req.Description
	}
	if req.NetBird != nil {
		if req.NetBird.Groups != nil {
			if err := checkGroups(*req.NetBird.Groups); err != nil {
				a.writeError(c, err)
				return
			}
			patch.NetBirdGroups = req.NetBird.Groups
		}
		patch.NetBirdEnabled = req.NetBird.Enabled
	}
	s, err := a.store.UpdateSite(c.Request.Context(), tenantOf(c), id, patch, a.now().UTC())
	if err != nil {
		a.writeError(c, fmt.Errorf("updating site %s: %w", id, err))
		return
	}
	c.JSON(http.StatusOK, viewSite(s))
}

func (a *API) deleteSite(c *gin.Context) {
	id, err := pathID(c, "site")
	if err != nil {
		a.writeError(c, err)
		return
	}
	if err := a.store.DeleteSite(c.Request.Context(), tenantOf(c), id); err != nil {
		a.writeError(c, fmt.Errorf("deleting site %s: %w", id, err))
		return
	}
	c.Status(http.StatusNoContent)
}
